"""The previous run's performance numbers of a target, to compare the next run with.

Kept as JSON (``{"target": ..., "saved_at": ..., "values": {"POST /api/search p95_ms":
210.0, ...}}``) in ``$SCHOLAR_OPS_STATE_DIR/functest/<target>-baseline.json`` unless the
plan names a path. Only a run whose performance suite passed replaces it, so a
regression is compared with the last good run, not with itself.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from scholar_ops.vault.known import default_state_dir


def baseline_path(target: str, configured: str | None = None) -> Path:
    if configured:
        return Path(configured).expanduser()
    return default_state_dir() / "functest" / f"{target}-baseline.json"


def load_baseline(path: Path) -> dict[str, float]:
    """The stored values, or {} when there is none or it cannot be read."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        values = doc.get("values", {})
        return {str(k): float(v) for k, v in values.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def save_baseline(path: Path, target: str, values: dict[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    doc = {"target": target, "saved_at": time.time(), "values": values}
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
