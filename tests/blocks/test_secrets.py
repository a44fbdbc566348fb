from __future__ import annotations

import pytest
from prefect.blocks.system import Secret
from pydantic import SecretStr

from blocks.secrets import load_master_key
from scholar_ops.vault.errors import ConfigError


def test_master_key_round_trips_through_a_secret_block(prefect_harness):
    digits = "0123456789" * 6 + "0123"  # all digits: Secret.get() would turn it into an int
    Secret(value=SecretStr(digits)).save("scholar-ops-test-master", overwrite=True)
    assert load_master_key("scholar-ops-test-master").secret == digits.encode()


def test_missing_secret_block_is_a_clear_error(prefect_harness):
    with pytest.raises(ConfigError, match=r"no-such-block.*scholar-ops setup"):
        load_master_key("no-such-block")
