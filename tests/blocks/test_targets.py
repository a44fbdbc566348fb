"""RedisTarget, ChromaTarget and FilesTarget: validation, secrets, real connections."""

from __future__ import annotations

import uuid

import pytest
from prefect.blocks.system import Secret
from pydantic import SecretStr, ValidationError

from blocks.chroma import ChromaTarget
from blocks.files import FilesTarget
from blocks.redis import RedisTarget
from scholar_ops.sources.redis.client import ping
from scholar_ops.vault.errors import ConfigError

PASSWORD = "pw-0123-do-not-log"


# -- Redis --------------------------------------------------------------------------


def test_redis_defaults_and_name():
    t = RedisTarget()
    info = t.conninfo()
    assert (info.host, info.port, info.password, info.tls) == ("127.0.0.1", 6379, None, False)
    assert t.target_name == "127.0.0.1:6379"
    assert RedisTarget(label="cache").target_name == "cache"
    assert RedisTarget.get_block_type_slug() == "scholar-ops-redis-target"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"port": 0}, "port"),
        ({"host": " "}, "host must not be empty"),
        ({"socket_timeout": 0}, "socket_timeout"),
        ({"passwd": PASSWORD}, r"did you mean 'password'\?"),
        ({"password": SecretStr(PASSWORD), "password_secret": "x"}, "either password or"),
    ],
)
def test_redis_invalid_settings(kwargs, match):
    with pytest.raises(ValidationError, match=match) as exc:
        RedisTarget(**kwargs)
    assert PASSWORD not in str(exc.value)


def test_redis_password_never_shows_and_reaches_the_server(tmp_path):
    from scholar_ops.sources.redis.server import throwaway_redis

    with throwaway_redis(tmp_path / "r", password=PASSWORD) as server:
        t = RedisTarget(host=server.host, port=server.port, password=SecretStr(PASSWORD))
        for text in (repr(t), t.model_dump_json(), repr(t.conninfo()), t.conninfo().describe()):
            assert PASSWORD not in text
        ping(t.conninfo())  # authenticated
        wrong = RedisTarget(host=server.host, port=server.port, password=SecretStr("wrong"))
        with pytest.raises(Exception, match=r"(?i)auth|password"):
            ping(wrong.conninfo())


def test_redis_password_from_a_secret_block(prefect_harness):
    name = f"redis-pw-{uuid.uuid4().hex[:8]}"
    Secret(value=SecretStr("007")).save(name)  # would JSON-decode to 7 through Secret.get()
    assert RedisTarget(password_secret=name).conninfo().password == "007"
    with pytest.raises(ConfigError, match=r"Redis target .* 'no-such-secret' holding the password"):
        RedisTarget(password_secret="no-such-secret").conninfo()


# -- Chroma -------------------------------------------------------------------------


def test_chroma_embedded_and_server():
    e = ChromaTarget(path="/data/chroma/")
    assert e.source().is_embedded and e.target_name == "chroma"
    s = ChromaTarget(host="vectors.internal", port=8001, token=SecretStr(PASSWORD))
    src = s.source()
    assert not src.is_embedded and s.target_name == "vectors.internal:8001"
    assert src.request_headers()["Authorization"] == f"Bearer {PASSWORD}"
    assert PASSWORD not in repr(src) and PASSWORD not in s.model_dump_json()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of path"),
        ({"path": "/a", "host": "h"}, "exactly one of path"),
        ({"host": "h", "physical": True}, "physical copies need an embedded directory"),
        ({"path": "/a", "physical": True, "collections": ["x"]}, "whole directory"),
        ({"path": "/a", "token": SecretStr(PASSWORD)}, "token is for a Chroma server"),
        ({"path": "/a", "colections": ["x"]}, r"did you mean 'collections'\?"),
    ],
)
def test_chroma_invalid_settings(kwargs, match):
    with pytest.raises(ValidationError, match=match) as exc:
        ChromaTarget(**kwargs)
    assert PASSWORD not in str(exc.value)


def test_chroma_token_from_a_secret_block(prefect_harness):
    name = f"chroma-token-{uuid.uuid4().hex[:8]}"
    Secret(value=SecretStr(PASSWORD)).save(name)
    src = ChromaTarget(host="h", token_secret=name, token_header="X-Chroma-Token").source()
    assert src.request_headers() == {"X-Chroma-Token": PASSWORD}


# -- files ----------------------------------------------------------------------------


def test_files_target():
    t = FilesTarget(path="/srv/uploads/", exclude=["*.tmp", " ", "cache/"])
    assert t.path == "/srv/uploads" and t.exclude == ["*.tmp", "cache/"]
    assert t.target_name == "/srv/uploads"
    assert FilesTarget(path="/srv/uploads", label="uploads").target_name == "uploads"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"path": "uploads"}, "must be absolute"),
        ({"path": ""}, "must not be empty"),
        ({"path": "/x", "include": ["!keep"]}, "negation is not supported"),
        ({"path": "/x", "excludes": ["a"]}, r"did you mean 'exclude'\?"),
    ],
)
def test_files_invalid_settings(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        FilesTarget(**kwargs)


def test_saved_targets_round_trip(prefect_harness):
    suffix = uuid.uuid4().hex[:8]
    RedisTarget(port=6380, password=SecretStr(PASSWORD), label="c").save(f"r-{suffix}")
    ChromaTarget(path="/v", collections=["a", "b"]).save(f"c-{suffix}")
    FilesTarget(path="/u", exclude=["*.tmp"]).save(f"f-{suffix}")
    assert RedisTarget.load_sync(f"r-{suffix}").conninfo().password == PASSWORD
    assert ChromaTarget.load_sync(f"c-{suffix}").collections == ["a", "b"]
    assert FilesTarget.load_sync(f"f-{suffix}").exclude == ["*.tmp"]


def test_targets_are_named_after_their_block_and_remember_the_earlier_default(prefect_harness):
    import uuid

    from blocks.files import FilesTarget
    from blocks.postgres import PostgresTarget
    from blocks.redis import RedisTarget

    sfx = uuid.uuid4().hex[:6]
    pg = PostgresTarget(database="aischolar")
    assert pg.target_name == "aischolar" and pg.earlier_target_names == []  # unsaved
    pg.save(f"pg-{sfx}")
    loaded = PostgresTarget.load_sync(f"pg-{sfx}")
    assert loaded.target_name == f"pg-{sfx}" and loaded.earlier_target_names == ["aischolar"]
    labelled = PostgresTarget(database="aischolar", label="main-db")
    labelled.save(f"pg2-{sfx}")
    assert PostgresTarget.load_sync(f"pg2-{sfx}").target_name == "main-db"
    assert PostgresTarget.load_sync(f"pg2-{sfx}").earlier_target_names == []
    RedisTarget(port=6380).save(f"redis-{sfx}")
    assert RedisTarget.load_sync(f"redis-{sfx}").earlier_target_names == ["127.0.0.1:6380"]
    FilesTarget(path="/srv/uploads").save(f"files-{sfx}")
    files = FilesTarget.load_sync(f"files-{sfx}")
    assert (files.target_name, files.earlier_target_names) == (f"files-{sfx}", ["/srv/uploads"])
