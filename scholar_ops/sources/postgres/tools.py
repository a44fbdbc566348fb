"""Finding the PostgreSQL client programs and running them as streams.

Every subprocess gets a deadline (a watchdog kills it: a Prefect task timeout
cannot interrupt a blocking read), its stderr is kept, and a non-zero exit
becomes a SourceError carrying the program's own message.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from scholar_ops.vault.errors import ConfigError, SourceError


def find_tool(name: str, bin_dir: str | Path | None = None) -> str:
    """Path of pg_dump / pg_restore / psql: bin_dir, else PATH, else the newest /usr/lib/postgresql."""
    if bin_dir is not None:
        path = Path(bin_dir) / name
        if not os.access(path, os.X_OK):
            raise ConfigError(
                f"{name} not found in {bin_dir}: point pg_bin_dir at PostgreSQL's bin directory"
            )
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    raise ConfigError(
        f"{name} not found: install the PostgreSQL client (Debian: postgresql-client)"
    )


class ToolProcess:
    """A running client program whose stdout (or stdin) is streamed."""

    def __init__(
        self, proc: subprocess.Popen[bytes], what: str, stderr: IO[bytes], timeout: float
    ) -> None:
        self.proc = proc
        self.what = what
        self._stderr = stderr
        self.timed_out = False
        self._timer = threading.Timer(timeout, self._kill)
        self._timer.daemon = True
        self._timer.start()

    def _kill(self) -> None:
        self.timed_out = True
        self.proc.kill()

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()

    def finish(self, timeout: float = 60) -> str:
        """Wait for the exit; raise SourceError with the program's message on failure."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            self.timed_out = True
        finally:
            self._timer.cancel()
        err = self.stderr_text()
        if self.timed_out:
            raise SourceError(f"{self.what} timed out and was stopped{': ' + err if err else ''}")
        if rc != 0:
            raise SourceError(
                f"{self.what} failed (exit code {rc}): {err or 'no message'}",
                is_connection_error(err),
            )
        return err

    def abort(self) -> None:
        self._timer.cancel()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@contextmanager
def run_tool(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    what: str,
    timeout: float,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = subprocess.PIPE,
) -> Iterator[ToolProcess]:
    """Start a client program; on an exception inside the block it is killed."""
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(list(argv), stdin=stdin, stdout=stdout, stderr=stderr, env=env)
        except OSError as e:
            raise SourceError(f"cannot run {argv[0]}: {e.strerror}") from None
        tool = ToolProcess(proc, what, stderr, timeout)
        try:
            yield tool
        except BaseException:
            tool.abort()
            raise
        finally:
            for f in (proc.stdout, proc.stdin):
                if f is not None:
                    f.close()


def run_checked(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    what: str,
    timeout: float,
    input: bytes | None = None,
) -> str:
    """Run a client program to completion; returns its stdout."""
    try:
        out = subprocess.run(list(argv), env=env, input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SourceError(f"{what} timed out after {timeout:.0f} s") from None
    except OSError as e:
        raise SourceError(f"cannot run {argv[0]}: {e.strerror}") from None
    if out.returncode != 0:
        raise SourceError(
            f"{what} failed (exit code {out.returncode}): {out.stderr.decode(errors='replace').strip()}"
        )
    return out.stdout.decode(errors="replace")


_CONNECTION_ERRORS = (
    "could not connect",
    "connection to server",
    "server closed the connection",
    "Connection refused",
    "could not receive data from server",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
)


def is_connection_error(message: str) -> bool:
    """Whether a client program's message says the server could not be reached (worth a retry)."""
    return any(m in message for m in _CONNECTION_ERRORS)
