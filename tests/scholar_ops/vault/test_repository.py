"""scholar_ops.vault.repository: what opening a repository costs (the WAL command opens one
per segment) and the constants it keeps in step with the modules it imports lazily."""

from __future__ import annotations

import subprocess
import sys

from scholar_ops.vault import repository, snapshot


def test_its_snapshot_prefix_is_the_snapshot_modules():
    assert repository.SNAPSHOT_PREFIX == snapshot.SNAPSHOT_PREFIX


def test_opening_a_repository_loads_no_index_pack_snapshot_or_thread_pool(tmp_path):
    code = (
        "import sys\n"
        "from scholar_ops.vault.crypto.keys import MasterKey\n"
        "from scholar_ops.vault.repository import Repository\n"
        "from scholar_ops.vault.storage.local import LocalStorage\n"
        f"s = LocalStorage({str(tmp_path / 'repo')!r})\n"
        "Repository.init(s, MasterKey.from_string('repository-test-key-0123456789'))\n"
        "before = set(sys.modules)\n"
        "r = Repository.open(s, MasterKey.from_string('repository-test-key-0123456789'))\n"
        "r.storage.put('x', r.seal('x', b'payload'))\n"
        "assert r.unseal('x', r.storage.get('x')) == b'payload'\n"
        "heavy = ['scholar_ops.vault.index', 'scholar_ops.vault.pack', "
        "'scholar_ops.vault.snapshot', 'concurrent.futures', 'logging']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
