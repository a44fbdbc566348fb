"""Webhook payload templates: rendered with sample runs, they must give valid JSON.

Every ``call-webhook`` payload of the file is rendered with made-up runs (and, for a
proactive trigger, without an event too): it must give JSON, and a payload for
AlertManager must be a list of alerts with ``alertname``/``severity`` labels,
``summary``/``description`` annotations, and labels that do not change from one run to the
next (no run ids or names: AlertManager groups and deduplicates alerts by their labels).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from scholar_ops.automations.errors import AutomationFileError

if TYPE_CHECKING:
    from prefect.events.schemas.automations import AutomationCore

SEVERITIES = ("critical", "warning", "info")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _sample_context(automation: AutomationCore, n: int, *, with_event: bool) -> dict[str, Any]:
    """What the server gives a webhook template, for a made-up run number ``n``.

    Only run-specific values differ between two values of ``n``: flow, deployment and
    state stay the same, so labels that differ show an unbounded value.
    """
    from prefect.events.schemas.events import ReceivedEvent

    occurred = datetime.fromisoformat(f"2025-01-0{1 + n % 9}T02:{n % 60:02d}:07.5+00:00")
    run_id = uuid.UUID(int=0x5C0_0000 + n)
    context: dict[str, Any] = {
        "automation": automation,
        "firing": SimpleNamespace(id=uuid.UUID(int=0xF1E + n), triggered=occurred),
        "labels": {},
        "firings": [],
        "events": [],
    }
    if not with_event:
        return context
    flow = SimpleNamespace(id=uuid.UUID(int=0xF10), name="full-backup", tags=[])
    deployment = SimpleNamespace(id=uuid.UUID(int=0xDE9), name="full-backup", tags=["critical"])
    state = SimpleNamespace(
        name="Failed",
        type="FAILED",
        timestamp=occurred,
        message=f'sample error {n}: "quoted" <b>{{braces}}</b>\nsecond line',
    )
    flow_run = SimpleNamespace(
        id=run_id, name=f"sample-run-{n}", state=state, tags=["critical"], parameters={}
    )
    event = ReceivedEvent.model_validate(
        {
            "occurred": occurred,
            "received": occurred,
            "event": "prefect.flow-run.Failed",
            "resource": {
                "prefect.resource.id": f"prefect.flow-run.{run_id}",
                "prefect.resource.name": flow_run.name,
                "prefect.state-name": "Failed",
                "prefect.state-type": "FAILED",
            },
            "related": [
                {
                    "prefect.resource.id": f"prefect.flow.{flow.id}",
                    "prefect.resource.role": "flow",
                    "prefect.resource.name": flow.name,
                },
                {"prefect.resource.id": "prefect.tag.critical", "prefect.resource.role": "tag"},
            ],
            "id": uuid.UUID(int=0xE7 + n),
        }
    )
    return {
        **context,
        "event": event,
        "flow": flow,
        "flow_run": flow_run,
        "deployment": deployment,
    }


def check_payload(
    payload: str, where: str, automation: AutomationCore, *, proactive: bool, alertmanager: bool
) -> None:
    from prefect.server.events.jinja_filters import all_filters
    from prefect.server.utilities.user_templates import (
        TemplateRenderError,
        register_user_template_filters,
        render_user_template_sync,
        validate_user_template,
    )

    register_user_template_filters(all_filters)
    try:
        validate_user_template(payload)
    except Exception as e:
        raise AutomationFileError(f"{where}: not a valid template: {e}") from e
    # A proactive trigger fires with the last matching event, or with none at all.
    variants = [False, True] if proactive else [True]
    for with_event in variants:
        rendered: list[Any] = []
        for n in (1, 2):
            context = _sample_context(automation, n, with_event=with_event)
            try:
                text = render_user_template_sync(payload, context)
            except TemplateRenderError as e:
                raise AutomationFileError(f"{where}: rendering failed: {e.error!r}") from e
            try:
                rendered.append(json.loads(text))
            except json.JSONDecodeError as e:
                raise AutomationFileError(
                    f"{where}: does not render to JSON ({e}); with a sample "
                    f"{'run' if with_event else 'firing without an event'} it gives:\n{text}"
                ) from e
        if alertmanager:
            for doc in rendered:
                _check_alerts(doc, where)
            first, second = ([a["labels"] for a in doc] for doc in rendered)
            if first != second:
                changing = sorted(
                    k
                    for a, b in zip(first, second, strict=True)
                    for k in a.keys() | b.keys()
                    if a.get(k) != b.get(k)
                )
                raise AutomationFileError(
                    f"{where}: labels {changing} change from one run to the next; labels "
                    "must be bounded (flow, deployment, state names): put run ids, run "
                    "names and messages into annotations"
                )


def _check_alerts(doc: Any, where: str) -> None:
    """An AlertManager ``POST /api/v2/alerts`` body, with the conventions of docs/metrics.md."""
    if not isinstance(doc, list) or not doc:
        raise AutomationFileError(
            f"{where}: AlertManager takes a JSON list of alerts, the payload gives {type(doc).__name__}"
        )
    for i, alert in enumerate(doc):
        at = f"{where}: alert [{i}]"
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise AutomationFileError(f"{at}: needs a `labels` object")
        labels = alert["labels"]
        for key, value in labels.items():
            if not _LABEL_NAME.match(key) or not isinstance(value, str):
                raise AutomationFileError(
                    f"{at}: label {key!r} must be a name ([A-Za-z_][A-Za-z0-9_]*) with a string value"
                )
        if not labels.get("alertname"):
            raise AutomationFileError(f"{at}: label `alertname` is required")
        if labels.get("severity") not in SEVERITIES:
            raise AutomationFileError(
                f"{at}: label `severity` must be one of {', '.join(SEVERITIES)}"
            )
        annotations = alert.get("annotations")
        if not isinstance(annotations, dict) or not all(
            isinstance(annotations.get(k), str) and annotations[k]
            for k in ("summary", "description")
        ):
            raise AutomationFileError(f"{at}: annotations `summary` and `description` are required")
        for key in ("startsAt", "endsAt"):
            if key in alert:
                try:
                    datetime.fromisoformat(str(alert[key]).replace("Z", "+00:00"))
                except ValueError as e:
                    raise AutomationFileError(
                        f"{at}: {key} {alert[key]!r} is not an RFC 3339 time"
                    ) from e
