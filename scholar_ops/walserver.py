"""The resident WAL archiver behind ``scholar-ops-wal --resident ... push %p`` (and fetch).

PostgreSQL runs archive_command once per 16 MB segment. A process that imports the store,
cryptography and zstandard spends about 70 ms before it reads the first byte, more than the
push itself. With ``--resident`` the first push runs in its own process as always, then
starts a server for these settings; every later push hands the file's path to that server
over a Unix socket and waits for its answer, so a segment costs the interpreter's start-up
(this module imports only what the standard library loads anyway) and the push.

- The server is the same command, settings and code: it runs ``scholar_ops.walcmd``'s own
  push (the same checks, status file and exit codes) and answers only once the segment is
  durably stored. The answer is the exit code and the one line the command would print.
  restore_command's ``fetch %f %p`` goes through it the same way.
- It listens in a directory only its OS user can enter (``$SCHOLAR_OPS_WAL_RUNTIME_DIR``,
  else ``$XDG_RUNTIME_DIR/scholar-ops-wal``, else ``/tmp/scholar-ops-wal-<uid>``; mode 0700,
  owned by the user, checked on every call) and serves only that user (SO_PEERCRED).
- The socket's name is a digest of the settings: the options (paths made absolute), the
  interpreter, the code (its files' sizes and times, so an upgrade starts a new server) and
  the environment the command reads (SCHOLAR_OPS_*, AWS_*, XDG_*, HOME). The server checks
  the digest of every request against its own.
- It exits after ``$SCHOLAR_OPS_WAL_IDLE_SECONDS`` (default 600) without a request, on
  SIGTERM, and with ``scholar-ops-wal ... --resident stop-resident`` (the same options).
  Next to its socket: ``<digest>.pid`` and ``<digest>.log`` (one line per push).
- Whatever goes wrong with it (none running, a stale socket, a private directory that is
  not private, no answer, a cut answer) costs only time: the push runs in the calling
  process (pushing the same segment again is a success, so a push the server finished but
  could not report is harmless).
"""

from __future__ import annotations

import os
import sys

RUNTIME_DIR_ENV = "SCHOLAR_OPS_WAL_RUNTIME_DIR"
IDLE_ENV = "SCHOLAR_OPS_WAL_IDLE_SECONDS"
DEFAULT_IDLE_SECONDS = 600.0
MAGIC = b"SOWR1"
REPLY_TIMEOUT = 600.0  # a push larger than this is not waited for: the client pushes itself
_ENV_PREFIXES = ("SCHOLAR_OPS_", "AWS_", "XDG_")
_CODE_FILES = (
    "__init__.py",
    "walcmd.py",
    "walserver.py",
    "sources/postgres/wal/store.py",
    "sources/postgres/wal/keycache.py",
    "vault/repository.py",
    "vault/storage/local.py",
    "vault/crypto/aead.py",
)
_MAX_SOCKET_PATH = 100


class _Unavailable(Exception):
    """No usable server: push in this process."""


# -- where and who -------------------------------------------------------------------------


def runtime_dir() -> str:
    if value := os.environ.get(RUNTIME_DIR_ENV):
        return value
    if xdg := os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(xdg, "scholar-ops-wal")
    return f"/tmp/scholar-ops-wal-{os.getuid()}"


def _private_dir(create: bool) -> str:
    """The runtime directory, made when asked; _Unavailable unless it is a real directory
    of this user that nobody else can enter."""
    path = runtime_dir()
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise _Unavailable(f"cannot make {path}: {e.strerror}") from None
    try:
        st = os.lstat(path)
    except OSError as e:
        raise _Unavailable(f"{path}: {e.strerror}") from None
    import stat

    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise _Unavailable(f"{path} is not a directory of mode 0700 owned by this user")
    return path


def fingerprint(options: list[str]) -> str:
    """A digest of everything the push depends on besides the file (see the docstring)."""
    try:  # the builtin module: hashlib would load OpenSSL's bindings (3 ms) for one digest
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256

    package = os.path.dirname(os.path.abspath(__file__))
    parts = [sys.executable, str(os.getuid()), *options, "\0"]
    for rel in _CODE_FILES:
        try:
            st = os.stat(os.path.join(package, rel))
            parts.append(f"{rel}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{rel}:-")
    parts += sorted(
        f"{k}={v}" for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES) or k == "HOME"
    )
    return sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def socket_path(fp: str, create: bool = False) -> str:
    path = os.path.join(_private_dir(create), fp[:24] + ".sock")
    if len(path.encode()) > _MAX_SOCKET_PATH:
        raise _Unavailable(f"{path} is too long for a Unix socket: set {RUNTIME_DIR_ENV}")
    return path


# -- the client ------------------------------------------------------------------------------


def _request(path: str, fp: str, verb: str, arg: str, timeout: float) -> tuple[int, str]:
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except OSError as e:
            raise _Unavailable(f"no server at {path} ({e.strerror or e})") from None
        s.sendall(b"\0".join((MAGIC, fp.encode(), verb.encode(), os.fsencode(arg))))
        s.shutdown(_socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except OSError as e:
                raise _Unavailable(f"no answer from {path} ({e})") from None
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        s.close()
    code, sep, line = b"".join(chunks).partition(b"\t")
    if not sep or not code.strip().isdigit():
        raise _Unavailable(f"a malformed answer from {path}")
    return int(code), line.decode("utf-8", "replace").rstrip("\n")


def push(options: list[str], path: str) -> tuple[int, str] | None:
    """(exit code, line) of ``path`` pushed by the server for ``options``; None when there
    is no usable server (the caller pushes, then calls ``start``)."""
    return _ask(options, "push", os.path.abspath(path))


def fetch(options: list[str], name: str, dest: str) -> tuple[int, str] | None:
    """(exit code, line) of WAL file ``name`` fetched into ``dest`` by the server; None
    when there is no usable server."""
    return _ask(options, "fetch", name + "\0" + os.path.abspath(dest))


def _ask(options: list[str], verb: str, arg: str) -> tuple[int, str] | None:
    try:
        fp = fingerprint(options)
        return _request(socket_path(fp), fp, verb, arg, REPLY_TIMEOUT)
    except _Unavailable:
        return None


def stop(options: list[str]) -> bool:
    """Ask the server for ``options`` to exit; False when none answered."""
    try:
        fp = fingerprint(options)
        return _request(socket_path(fp), fp, "stop", "", 30.0)[0] == 0
    except _Unavailable:
        return False


def start(options: list[str]) -> str | None:
    """Start a server for ``options`` in the background (detached: its own session, no
    terminal, cwd unchanged, output in its log); returns why not when it cannot."""
    try:
        fp = fingerprint(options)
        sock = socket_path(fp, create=True)
    except _Unavailable as e:
        return str(e)
    log = sock[: -len(".sock")] + ".log"
    try:  # one line per segment: keep the last two megabytes or so
        if os.stat(log).st_size > 1 << 20:
            os.replace(log, log + ".1")
    except OSError:
        pass
    argv = [sys.executable, "-m", "scholar_ops.walserver", sock, fp, *options]
    try:
        pid = os.fork()
    except OSError as e:
        return f"cannot fork: {e.strerror}"
    if pid:
        os.waitpid(pid, 0)  # the intermediate child exits at once
        return None
    try:  # the intermediate child: a new session, then the server as its orphan
        os.setsid()
        if os.fork():
            os._exit(0)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.closerange(3, 1024)
        os.chdir("/")
        os.execv(sys.executable, argv)
    finally:
        os._exit(127)


# -- the server ------------------------------------------------------------------------------


def _peer_uid(conn: object) -> int:
    import _socket
    import struct

    creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, struct.calcsize("3i"))  # type: ignore[attr-defined]
    return int(struct.unpack("3i", creds)[1])


def serve(sock: str, fp: str, options: list[str], idle: float | None = None) -> int:
    """Serve pushes for ``options`` at ``sock`` until idle, stopped or signalled."""
    import contextlib
    import fcntl
    import signal
    import socket
    import time

    from scholar_ops import walcmd

    idle = float(os.environ.get(IDLE_ENV) or DEFAULT_IDLE_SECONDS) if idle is None else idle
    lock_fd = os.open(sock[: -len(".sock")] + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server for these settings is starting or running
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)  # a stale socket of a server that died
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock)
    os.chmod(sock, 0o600)
    server.listen(16)
    server.settimeout(idle)
    inode = os.stat(sock).st_ino
    pid_file = sock[: -len(".sock")] + ".pid"
    with open(pid_file, "w") as f:
        f.write(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    args = walcmd.parse_options(options)
    storage = None

    def say(line: str) -> None:
        print(f"{time.strftime('%F %T')} {line}", flush=True)

    say(f"serving {sock} (pid {os.getpid()}, idle exit {idle:g} s)")
    try:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                say(f"idle for {idle:g} s: exiting")
                return 0
            with conn:
                conn.settimeout(30)
                try:
                    if _peer_uid(conn) != os.getuid():
                        continue
                    data = b""
                    while chunk := conn.recv(65536):
                        data += chunk
                    magic, their_fp, verb, arg = data.split(b"\0", 3)
                except (OSError, ValueError):
                    continue
                if magic != MAGIC or their_fp.decode() != fp:
                    conn.sendall(b"2\tthe resident archiver serves other settings\n")
                    continue
                if verb == b"stop":
                    conn.sendall(b"0\tstopped\n")
                    say("stopped on request")
                    return 0
                if verb == b"push":
                    args.path = os.fsdecode(arg)
                    what = args.path
                elif verb == b"fetch" and arg.count(b"\0") == 1:
                    name, dest = arg.split(b"\0")
                    args.name, args.dest = os.fsdecode(name), os.fsdecode(dest)
                    what = f"{args.name} to {args.dest}"
                else:
                    conn.sendall(b"2\tthe resident archiver does not know this request\n")
                    continue
                args.command = verb.decode()
                code, line, storage = walcmd.run_resident(args, storage)
                say(f"{args.command} {what}: exit {code}{' ' + line if line else ''}")
                with contextlib.suppress(OSError):
                    conn.sendall(f"{code}\t{line}\n".encode())
    finally:
        server.close()
        with contextlib.suppress(OSError):
            if os.stat(sock).st_ino == inode:
                os.unlink(sock)
                os.unlink(pid_file)


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1], sys.argv[2], sys.argv[3:]))
