"""Run by test_crash_points.py in a child process: a backup or a prune of a local repository
that SIGKILLs itself at a chosen point of its writes.

Argument: JSON ``{root, master, op: "backup" | "prune", size, seed, forget: [ids],
prefix, when}``. The process kills itself (``kill -9``, no clean-up of any kind) on the
first file-system call for an object whose name starts with ``prefix``:

- ``when="rename"``: when the object's bytes are written and fsynced to its temporary
  ``.tmp-*`` file, just before the rename that makes it an object (killed mid-write);
- ``when="after"``: just after that rename (the object is complete, the next is not);
- ``when="deleted"``: just after the object was deleted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from scholar_ops.testbed.datagen import GeneratedStream
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.prune import forget_and_prune
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage


def main() -> None:
    spec = json.loads(sys.argv[1])
    root = Path(spec["root"]).resolve()
    prefix, when = spec["prefix"], spec["when"]

    def matches(path: str | os.PathLike[str]) -> bool:
        try:
            name = Path(path).resolve().relative_to(root).as_posix()
        except ValueError:
            return False
        return name.startswith(prefix)

    def die() -> None:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    real_replace, real_unlink = os.replace, os.unlink

    def replace(src, dst, **kw):
        if when == "rename" and matches(dst):
            die()
        real_replace(src, dst, **kw)
        if when == "after" and matches(dst):
            die()

    def unlink(path, **kw):
        real_unlink(path, **kw)
        if when == "deleted" and matches(path):
            die()

    setattr(os, "replace", replace)  # noqa: B010
    setattr(os, "unlink", unlink)  # noqa: B010

    repo = Repository.open(LocalStorage(root), MasterKey.from_string(spec["master"]))
    print("started", flush=True)
    if spec["op"] == "backup":
        backup_stream(
            repo, GeneratedStream(spec["size"], seed=spec["seed"]), component="c", target="t"
        )
    else:
        forget_and_prune(repo, spec["forget"])
    print("finished", flush=True)


if __name__ == "__main__":
    main()
