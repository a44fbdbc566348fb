"""``python -m scholar_ops.aischolar --host 127.0.0.1 --port 8080``: run the reference
application (settings from AISCHOLAR_* variables, docs/aischolar.md)."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scholar_ops.aischolar")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args(argv)
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

    import uvicorn

    from scholar_ops.aischolar.app import create_app
    from scholar_ops.aischolar.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as e:
        print(f"aischolar: {e}", file=sys.stderr)
        return 2
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="warning",
        workers=1,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
