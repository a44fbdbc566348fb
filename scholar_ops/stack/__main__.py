"""``python -m scholar_ops.stack up|down|status|purge``: see the package docstring."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m scholar_ops.stack",
        description="the whole scholar-ops system on this machine, in the background",
    )
    ap.add_argument("action", choices=["up", "down", "status", "purge"])
    ap.add_argument(
        "--home",
        type=Path,
        default=Path(os.environ.get("STACK_HOME") or "stack-data"),
        help="where state, logs and data go (env STACK_HOME; default %(default)s)",
    )
    ap.add_argument("--workers", type=int, default=1, help="process workers (default 1)")
    ap.add_argument("--wait", action="store_true", help="up: wait for the first runs to end")
    ap.add_argument("--timeout", type=float, default=None, help="seconds (up 600, down 60)")
    ap.add_argument("--json", action="store_true", help="status: as JSON")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    from scholar_ops.stack import Stack, StackError
    from scholar_ops.stack.stack import health_token_path
    from scholar_ops.vault.errors import ConfigError

    try:
        stack = Stack(args.home, workers=args.workers)
        if args.action == "up":
            state = stack.up(args.timeout or 600, wait=args.wait)
            print(f"\nscholar-ops stack in {state.home} (logs in {state.home / 'logs'})")
            if not state.started:
                print("everything was running already: nothing started")
            # the URLs, then the repositories: the backups' and the second copy's
            shown = {**state.urls, **stack.status()["repositories"]}
            width = max(len(k) for k in shown)
            for key, where in shown.items():
                print(f"  {key:<{width}}  {where}")
            token = health_token_path(state.home)
            print(f"the health service wants `Authorization: Bearer $(cat {token})`")
            print("stop it with `make down` (python -m scholar_ops.stack down)")
            return EXIT_OK
        if args.action == "down":
            stopped = stack.down(args.timeout or 60)
            print(
                f"stopped {len(stopped)}: {', '.join(stopped)}"
                if stopped
                else "nothing was running"
            )
            return EXIT_OK
        if args.action == "purge":
            for path in stack.purge():
                print(f"removed {path}")
            return EXIT_OK
        status = stack.status()
        if args.json:
            print(json.dumps(status, indent=1))
        else:
            print(f"stack in {status['home']}: {'running' if status['running'] else 'not running'}")
            for name, p in status["processes"].items():
                port = f" port {p['port']}" if p["port"] else ""
                print(f"  {name:<14} pid {p['pid']:<8} {'up' if p['alive'] else 'DOWN'}{port}")
            for key, url in status["urls"].items():
                print(f"  {key:<14} {url}")
            for block, path in status["repositories"].items():
                print(f"  {block:<14} {path}")
        return EXIT_OK if status["running"] else EXIT_NOT_RUNNING
    except StackError as e:
        print(f"stack: {e}", file=sys.stderr)
        return EXIT_USAGE if _is_usage(str(e)) else EXIT_FAILED
    except ConfigError as e:  # e.g. the project (deployments.yaml, flows/) not found
        print(f"stack: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("stack: interrupted: run `down` to stop what was started", file=sys.stderr)
        return EXIT_FAILED


def _is_usage(message: str) -> bool:
    return any(
        s in message
        for s in (
            "is taken by another process",
            "not found",
            "is missing",
            "unknown port",
            "another `up` or `down`",
            "workers=",
            "already has port",
            "is running: run",
        )
    )


if __name__ == "__main__":
    sys.exit(main())
