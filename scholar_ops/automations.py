"""Prefect automations kept in ``automations.yaml`` and applied idempotently.

The file lists automations in Prefect's own format (what ``prefect automation create
--from-file`` reads), except that the ids an action needs are given by name and resolved
at apply time, since ids differ from one server to the next:

- ``call-webhook``: ``block: <name>`` of a Webhook block; without it, the AlertManager
  webhook block (``webhook_block``, default ``scholar-ops-alertmanager``);
- ``run-deployment`` (and the other deployment actions with ``source: selected``):
  ``deployment: <flow name>/<deployment name>``.

``apply_automations`` matches automations by name: a new one is created, a changed one is
updated in place (same id), an identical one is left alone, and automations that are not
in the file are never touched. With ``alertmanager_url`` it first creates or updates the
Webhook block (POST ``<url>/api/v2/alerts``, ``Content-Type: application/json``).

``load_automations`` checks the file before anything reaches the server: unknown or
misspelled keys (Prefect's models silently ignore them), Prefect's own validation, and
every webhook payload template rendered with sample runs: it must give JSON, and a payload
for AlertManager must be a list of alerts with ``alertname``/``severity`` labels,
``summary``/``description`` annotations, and labels that do not change from one run to the
next (no run ids or names: AlertManager groups and deduplicates alerts by their labels).

Command line (scholar_ops.cli.automations)::

    scholar-ops automations apply [--file automations.yaml] [--alertmanager-url URL]
        [--webhook-block NAME] [--dry-run] [--skip-missing]
    scholar-ops automations list [--file automations.yaml]
    scholar-ops automations check [--file automations.yaml]

Errors raised on purpose are ``AutomationsError`` (a ``ConfigError``: exit code 2).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal, cast, get_args
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import yaml
from prefect.events.actions import ActionTypes, CallWebhook, DeploymentAction
from prefect.events.schemas.automations import (
    AutomationCore,
    CompoundTrigger,
    EventTrigger,
    MetricTrigger,
    Posture,
    SequenceTrigger,
    trigger_discriminator,
)
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, ValidationError

from scholar_ops.automation_defaults import DEFAULT_FILE, DEFAULT_WEBHOOK_BLOCK
from scholar_ops.project import project_root
from scholar_ops.redaction import redact_url
from scholar_ops.vault.errors import ConfigError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import Automation

logger = logging.getLogger(__name__)

ALERTMANAGER_ALERTS_PATH = "/api/v2/alerts"
SEVERITIES = ("critical", "warning", "info")

Status = Literal["created", "updated", "unchanged", "skipped"]


TRIGGER_CLASSES: dict[str, type[BaseModel]] = {
    "event": EventTrigger,
    "metric": MetricTrigger,
    "compound": CompoundTrigger,
    "sequence": SequenceTrigger,
}
ACTION_CLASSES: dict[str, type[BaseModel]] = {
    cls.model_fields["type"].default: cls for cls in get_args(ActionTypes)
}
AUTOMATION_KEYS = (
    "name",
    "description",
    "enabled",
    "tags",
    "trigger",
    "actions",
    "actions_on_trigger",
    "actions_on_resolve",
)
ACTION_LISTS = ("actions", "actions_on_trigger", "actions_on_resolve")
TOP_LEVEL_KEYS = ("automations", "definitions")
# Stands in for ids not known yet: while checking a file, and in a dry run before the
# webhook block exists.
PLACEHOLDER_ID = UUID(int=0)
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AutomationsError(ConfigError):
    """Base of the errors this module raises on purpose (a bad file, a missing reference)."""


class AutomationFileError(AutomationsError, ValueError):
    """The automations file is invalid; the message names the automation and the field."""


class MissingReferenceError(AutomationsError, LookupError):
    """A Webhook block or deployment an automation names does not exist on the server."""


@dataclass(frozen=True)
class ActionSpec:
    """One action of an automation, with its references by name still unresolved."""

    type: str
    fields: Mapping[str, Any]
    #: call-webhook: the Webhook block's name; None: the AlertManager block of the apply.
    block: str | None = None
    #: deployment actions with source "selected": "<flow name>/<deployment name>".
    deployment: str | None = None

    def block_name(self, default_block: str) -> str | None:
        if self.type != CallWebhook.model_fields["type"].default:
            return None
        return self.block or default_block

    def build(
        self,
        *,
        block_ids: Mapping[str, UUID],
        deployment_ids: Mapping[str, UUID],
        default_block: str = DEFAULT_WEBHOOK_BLOCK,
    ) -> BaseModel:
        data: dict[str, Any] = {**self.fields, "type": self.type}
        block = self.block_name(default_block)
        if block is not None:
            data["block_document_id"] = block_ids[block]
        if self.deployment is not None:
            data["deployment_id"] = deployment_ids[self.deployment]
        return ACTION_CLASSES[self.type].model_validate(data)


@dataclass(frozen=True)
class AutomationSpec:
    """One automation of the file, validated, its references by name unresolved."""

    name: str
    description: str
    #: None: not in the file (new automations start enabled, existing ones keep their state).
    enabled: bool | None
    tags: tuple[str, ...]
    #: The trigger as the file gives it (validated against Prefect's trigger models).
    trigger: Mapping[str, Any]
    actions: tuple[ActionSpec, ...]
    actions_on_trigger: tuple[ActionSpec, ...] = ()
    actions_on_resolve: tuple[ActionSpec, ...] = ()

    @property
    def all_actions(self) -> tuple[ActionSpec, ...]:
        return self.actions + self.actions_on_trigger + self.actions_on_resolve

    def webhook_blocks(self, default_block: str = DEFAULT_WEBHOOK_BLOCK) -> set[str]:
        """Names of the Webhook blocks this automation calls."""
        return {b for a in self.all_actions if (b := a.block_name(default_block)) is not None}

    def deployments(self) -> set[str]:
        """Names ("<flow>/<deployment>") of the deployments this automation acts on."""
        return {a.deployment for a in self.all_actions if a.deployment is not None}

    def build(
        self,
        *,
        block_ids: Mapping[str, UUID],
        deployment_ids: Mapping[str, UUID],
        default_block: str = DEFAULT_WEBHOOK_BLOCK,
        enabled: bool | None = None,
    ) -> AutomationCore:
        """The automation Prefect takes, every field set explicitly.

        Explicitly, because the client sends updates with ``exclude_unset``: a field left
        at its default would keep its old value on the server.
        """

        def dumps(specs: tuple[ActionSpec, ...]) -> list[dict[str, Any]]:
            return [
                a.build(
                    block_ids=block_ids, deployment_ids=deployment_ids, default_block=default_block
                ).model_dump(mode="json")
                for a in specs
            ]

        trigger_cls = TRIGGER_CLASSES[trigger_discriminator(dict(self.trigger))]
        trigger = trigger_cls.model_validate(dict(self.trigger))
        if enabled is None:
            enabled = True if self.enabled is None else self.enabled
        return AutomationCore.model_validate(
            {
                "name": self.name,
                "description": self.description,
                "enabled": enabled,
                "tags": list(self.tags),
                "trigger": trigger.model_dump(mode="json"),
                "actions": dumps(self.actions),
                "actions_on_trigger": dumps(self.actions_on_trigger),
                "actions_on_resolve": dumps(self.actions_on_resolve),
                # owner_resource stays unset: the API refuses it in updates.
            }
        )


# --------------------------------------------------------------------------- loading


def load_automations(path: str | Path = DEFAULT_FILE) -> list[AutomationSpec]:
    """Read and validate the automations file; raises ``AutomationFileError``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise AutomationFileError(f"{p}: cannot read the automations file: {e.strerror}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise AutomationFileError(f"{p}: not valid YAML: {e}") from e
    if not isinstance(data, dict) or "automations" not in data:
        raise AutomationFileError(f"{p}: expected a mapping with an `automations:` list")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise AutomationFileError(_unknown_key(f"{p}", str(key), TOP_LEVEL_KEYS))
    entries = data["automations"]
    if not isinstance(entries, list):
        raise AutomationFileError(f"{p}: `automations` must be a list")
    specs: list[AutomationSpec] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise AutomationFileError(f"{p}: automations[{i}] must be a mapping")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise AutomationFileError(
                f"{p}: automations[{i}]: `name` is required (a non-empty string)"
            )
        if name in seen:
            raise AutomationFileError(
                f"{p}: automation {name!r} is listed twice (automations[{seen[name]}] and "
                f"automations[{i}]); names identify automations on the server"
            )
        seen[name] = i
        specs.append(_parse_automation(entry, f"{p}: automation {name!r}"))
    return specs


def _parse_automation(entry: dict[str, Any], where: str) -> AutomationSpec:
    for key in entry:
        if key not in AUTOMATION_KEYS:
            raise AutomationFileError(_unknown_key(where, str(key), AUTOMATION_KEYS))
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise AutomationFileError(f"{where}: description: must be a string")
    enabled = entry.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise AutomationFileError(f"{where}: enabled: must be true or false")
    tags = entry.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise AutomationFileError(f"{where}: tags: must be a list of strings")
    if "trigger" not in entry:
        raise AutomationFileError(f"{where}: trigger: is required")
    trigger = entry["trigger"]
    trigger_model = _parse_trigger(trigger, where, "trigger")
    if not entry.get("actions"):
        raise AutomationFileError(f"{where}: actions: at least one action is required")
    lists: dict[str, tuple[ActionSpec, ...]] = {}
    for key in ACTION_LISTS:
        items = entry.get(key, [])
        if not isinstance(items, list):
            raise AutomationFileError(f"{where}: {key}: must be a list of actions")
        lists[key] = tuple(_parse_action(a, where, f"{key}[{i}]") for i, a in enumerate(items))
    spec = AutomationSpec(
        name=entry["name"],
        description=description,
        enabled=enabled,
        tags=tuple(tags),
        trigger=trigger,
        actions=lists["actions"],
        actions_on_trigger=lists["actions_on_trigger"],
        actions_on_resolve=lists["actions_on_resolve"],
    )
    placeholders = {b: PLACEHOLDER_ID for b in spec.webhook_blocks()}
    try:
        core = spec.build(
            block_ids=placeholders,
            deployment_ids={d: PLACEHOLDER_ID for d in spec.deployments()},
        )
    except ValidationError as e:
        raise AutomationFileError(_validation_message(where, "", e)) from e
    posture = getattr(trigger_model, "posture", None)
    for key in ACTION_LISTS:
        for i, action in enumerate(lists[key]):
            payload = action.fields.get("payload")
            if action.type == "call-webhook" and payload:
                _check_payload(
                    str(payload),
                    f"{where}: {key}[{i}].payload",
                    core,
                    proactive=posture == Posture.Proactive,
                    alertmanager=action.block is None,
                )
    return spec


def _parse_trigger(data: Any, where: str, loc: str) -> BaseModel:
    if not isinstance(data, dict):
        raise AutomationFileError(f"{where}: {loc}: must be a mapping")
    kind = trigger_discriminator(data)
    cls = TRIGGER_CLASSES.get(kind)
    if cls is None:
        raise AutomationFileError(
            f"{where}: {loc}.type: unknown trigger type {kind!r}; use one of "
            + ", ".join(TRIGGER_CLASSES)
        )
    valid = list(cls.model_fields)
    for key in data:
        if key not in valid:
            raise AutomationFileError(_unknown_key(f"{where}: {loc}", str(key), valid))
    nested = data.get("triggers")
    if isinstance(nested, list):
        for i, sub in enumerate(nested):
            _parse_trigger(sub, where, f"{loc}.triggers[{i}]")
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise AutomationFileError(_validation_message(where, loc, e)) from e


def _parse_action(data: Any, where: str, loc: str) -> ActionSpec:
    if not isinstance(data, dict):
        raise AutomationFileError(f"{where}: {loc}: must be a mapping")
    kind = data.get("type")
    cls = ACTION_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise AutomationFileError(
            f"{where}: {loc}.type: unknown action type {kind!r}; use one of "
            + ", ".join(sorted(ACTION_CLASSES))
        )
    is_webhook = cls is CallWebhook
    is_deployment = issubclass(cls, DeploymentAction)
    if "block_document_id" in data:
        hint = (
            "name the Webhook block with `block: <name>` (or leave it out for the AlertManager block)"
            if is_webhook
            else "this file supports blocks by name for call-webhook only"
        )
        raise AutomationFileError(
            f"{where}: {loc}.block_document_id: ids differ between servers; {hint}"
        )
    if "deployment_id" in data:
        raise AutomationFileError(
            f"{where}: {loc}.deployment_id: ids differ between servers; name the deployment "
            "with `deployment: <flow name>/<deployment name>`"
        )
    valid = [k for k in cls.model_fields if k not in ("block_document_id", "deployment_id")]
    if is_webhook:
        valid.append("block")
    if is_deployment:
        valid.append("deployment")
    for key in data:
        if key not in valid:
            raise AutomationFileError(_unknown_key(f"{where}: {loc}", str(key), valid))
    fields = {k: v for k, v in data.items() if k not in ("type", "block", "deployment")}
    block = data.get("block")
    if block is not None and (not isinstance(block, str) or not block.strip()):
        raise AutomationFileError(f"{where}: {loc}.block: must be a Webhook block's name")
    deployment = data.get("deployment")
    if is_deployment:
        source = data.get("source", "selected")
        if source == "selected":
            if not isinstance(deployment, str) or deployment.count("/") != 1:
                raise AutomationFileError(
                    f"{where}: {loc}.deployment: required as '<flow name>/<deployment name>' "
                    "(or `source: inferred` to act on the triggering event's deployment)"
                )
        elif deployment is not None:
            raise AutomationFileError(
                f"{where}: {loc}.deployment: not allowed with `source: {source}`"
            )
    spec = ActionSpec(type=str(kind), fields=fields, block=block, deployment=deployment)
    try:
        spec.build(
            block_ids={b: PLACEHOLDER_ID for b in [spec.block_name(DEFAULT_WEBHOOK_BLOCK)] if b},
            deployment_ids={deployment: PLACEHOLDER_ID} if deployment else {},
        )
    except ValidationError as e:
        raise AutomationFileError(_validation_message(where, loc, e)) from e
    return spec


def _unknown_key(where: str, key: str, valid: Sequence[str]) -> str:
    message = f"{where}: unknown field {key!r}"
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return f"{message}; valid fields: {', '.join(valid)}"


# Parts of pydantic error locations that name a union member, not a field.
_LOC_TAGS = frozenset({*TRIGGER_CLASSES, *ACTION_CLASSES, "known", "unknown"})


def _validation_message(where: str, prefix: str, error: ValidationError) -> str:
    lines = []
    for err in error.errors(include_url=False, include_input=False):
        loc = prefix
        for part in err["loc"]:
            if isinstance(part, int):
                loc += f"[{part}]"
            elif part in _LOC_TAGS or "[" in str(part):
                continue
            else:
                loc += f".{part}" if loc else str(part)
        lines.append(f"{where}: {loc or '(automation)'}: {err['msg']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- payload check


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


def _check_payload(
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


# --------------------------------------------------------------------------- applying


@dataclass
class PlanItem:
    """What applying the file does (or would do) to one automation."""

    name: str
    status: Status
    #: The id on the server (None: to be created, or skipped and absent).
    id: UUID | None = None
    desired: AutomationCore | None = None
    #: updated: the top-level fields that differ; skipped: what is missing.
    details: list[str] = field(default_factory=list)


def alertmanager_alerts_url(alertmanager_url: str) -> str:
    """``http://am:9093`` -> ``http://am:9093/api/v2/alerts`` (left alone if already there)."""
    url = alertmanager_url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AutomationsError(
            f"AlertManager URL {redact_url(url)!r} must be http(s)://host[:port][/prefix]"
        )
    path = parts.path.rstrip("/")
    if not path.endswith(ALERTMANAGER_ALERTS_PATH):
        path += ALERTMANAGER_ALERTS_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def apply_webhook_block(
    alertmanager_url: str,
    *,
    name: str = DEFAULT_WEBHOOK_BLOCK,
    dry_run: bool = False,
) -> tuple[Status, UUID | None]:
    """Create or update the Webhook block posting to AlertManager; (status, block id).

    Method, URL and ``Content-Type`` are set; other headers (an ``Authorization`` added by
    an operator) and the block's other settings are kept. The id is None only in a dry run
    that would create the block. An update keeps the block's id, so the automations that
    call it stay unchanged.
    """
    from prefect.blocks.webhook import Webhook

    target = alertmanager_alerts_url(alertmanager_url)
    current: Webhook | None
    try:
        # Always synchronous (from inside an event loop `load` would return a coroutine).
        current = cast(Webhook, Webhook.load(name, _sync=True))  # type: ignore[call-arg]
    except ValueError:  # no Webhook block of that name
        current = None
    headers = {"Content-Type": "application/json"}
    settings: dict[str, Any] = {}
    if current is not None:
        headers = {
            **{
                k: v
                for k, v in current.headers.get_secret_value().items()
                if k.lower() != "content-type"
            },
            **headers,
        }
        settings = {"allow_private_urls": current.allow_private_urls, "verify": current.verify}
        if (
            current.method == "POST"
            and current.url.get_secret_value() == target
            and current.headers.get_secret_value() == headers
        ):
            return "unchanged", current._block_document_id
    status: Status = "created" if current is None else "updated"
    current_id = current._block_document_id if current is not None else None
    if dry_run:
        return status, current_id
    block = Webhook.model_validate(
        {"method": "POST", "url": target, "headers": headers, **settings}
    )
    block_id = cast(UUID, block.save(name, overwrite=True, _sync=True))  # type: ignore[call-arg]
    logger.info("Webhook block %r %s: POST %s", name, status, redact_url(target))
    return status, block_id


def plan_automations(
    path: str | Path = DEFAULT_FILE,
    *,
    alertmanager_url: str | None = None,
    webhook_block: str = DEFAULT_WEBHOOK_BLOCK,
    dry_run: bool = False,
    skip_missing: bool = False,
    client: SyncPrefectClient | None = None,
) -> list[PlanItem]:
    """``apply_automations`` with the details: one ``PlanItem`` per automation of the file."""
    specs = load_automations(path)
    if alertmanager_url is not None:
        alertmanager_alerts_url(alertmanager_url)  # a bad URL fails before anything is written
    if client is None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as new_client:
            return _plan(new_client, specs, alertmanager_url, webhook_block, dry_run, skip_missing)
    return _plan(client, specs, alertmanager_url, webhook_block, dry_run, skip_missing)


def apply_automations(
    path: str | Path = DEFAULT_FILE,
    *,
    alertmanager_url: str | None = None,
    webhook_block: str = DEFAULT_WEBHOOK_BLOCK,
    dry_run: bool = False,
    skip_missing: bool = False,
) -> list[tuple[str, str]]:
    """Create or update the automations of ``path`` on the Prefect API; [(name, status)].

    Status is "created", "updated" (in place, same id), "unchanged", or "skipped" (only
    with ``skip_missing``: a Webhook block or deployment it names does not exist).
    Automations are matched by name; automations not in the file are never touched.
    With ``alertmanager_url`` the Webhook block ``webhook_block`` is created or updated
    first. ``dry_run`` reports what would happen and writes nothing.

    Every check happens before the first write: a bad file raises ``AutomationFileError``,
    a missing block or deployment ``MissingReferenceError`` (unless ``skip_missing``), an
    automation name held by several automations on the server ``AutomationsError``.
    """
    plan = plan_automations(
        path,
        alertmanager_url=alertmanager_url,
        webhook_block=webhook_block,
        dry_run=dry_run,
        skip_missing=skip_missing,
    )
    return [(item.name, item.status) for item in plan]


def _read_all_automations(client: SyncPrefectClient) -> list[Automation]:
    found: list[Automation] = []
    page = 200
    while True:
        batch = client.read_automations(limit=page, offset=len(found))
        found.extend(batch)
        if len(batch) < page:
            return found


def _as_core(automation: Automation) -> AutomationCore:
    return AutomationCore.model_validate(automation.model_dump(mode="json", exclude={"id"}))


def _changed_fields(desired: AutomationCore, current: AutomationCore) -> list[str]:
    return [f for f in AutomationCore.model_fields if getattr(desired, f) != getattr(current, f)]


def _plan(
    client: SyncPrefectClient,
    specs: list[AutomationSpec],
    alertmanager_url: str | None,
    webhook_block: str,
    dry_run: bool,
    skip_missing: bool,
) -> list[PlanItem]:
    # 1. References, all read before anything is written.
    deployment_ids: dict[str, UUID] = {}
    for name in sorted({d for s in specs for d in s.deployments()}):
        with contextlib.suppress(ObjectNotFound):
            deployment_ids[name] = client.read_deployment_by_name(name).id
    block_ids: dict[str, UUID] = {}
    for name in sorted({b for s in specs for b in s.webhook_blocks(webhook_block)}):
        try:
            doc = client.read_block_document_by_name(
                name, block_type_slug="webhook", include_secrets=False
            )
        except ObjectNotFound:
            continue
        block_ids[name] = doc.id
    will_exist = {webhook_block} if alertmanager_url is not None else set()
    missing: dict[str, list[str]] = {}
    for s in specs:
        lacks = [f"deployment {d!r}" for d in sorted(s.deployments()) if d not in deployment_ids]
        lacks += [
            f"Webhook block {b!r}"
            for b in sorted(s.webhook_blocks(webhook_block))
            if b not in block_ids and b not in will_exist
        ]
        if lacks:
            missing[s.name] = lacks
    if missing and not skip_missing:
        api = str(client.api_url).rstrip("/")
        lines = [f"automation {n!r} needs {', '.join(m)}" for n, m in missing.items()]
        hints = []
        if any("deployment" in m for ms in missing.values() for m in ms):
            hints.append("deploy it first (`prefect deploy --all`)")
        if any("Webhook block" in m for ms in missing.values() for m in ms):
            hints.append("pass the AlertManager URL (--alertmanager-url) to create the block")
        raise MissingReferenceError(  # one line: the command line shows the first
            f"not found on the Prefect API at {api}: "
            + "; ".join(lines)
            + f". {'; '.join(hints).capitalize()}, or pass --skip-missing to leave these "
            "automations out"
        )

    # 2. Existing automations by name; a name held twice is ambiguous.
    by_name: dict[str, list[Automation]] = {}
    for a in _read_all_automations(client):
        by_name.setdefault(a.name, []).append(a)
    for s in specs:
        held = by_name.get(s.name, [])
        if len(held) > 1:
            raise AutomationsError(
                f"{len(held)} automations on the server are named {s.name!r} (ids "
                + ", ".join(str(a.id) for a in held)
                + "): delete the extra ones (`prefect automation delete --id ...`), names "
                "identify the automations of the file"
            )

    # 3. The webhook block (the first write).
    if alertmanager_url is not None:
        status, block_id = apply_webhook_block(
            alertmanager_url, name=webhook_block, dry_run=dry_run
        )
        block_ids[webhook_block] = block_id or PLACEHOLDER_ID
        if dry_run:
            logger.info("Webhook block %r: %s (dry run)", webhook_block, status)
        elif status == "unchanged":
            logger.info("Webhook block %r: unchanged", webhook_block)

    # 4. The automations, in file order.
    plan: list[PlanItem] = []
    for s in specs:
        current = by_name.get(s.name, [None])[0]
        if s.name in missing:
            item = PlanItem(
                s.name, "skipped", id=current.id if current else None, details=missing[s.name]
            )
            logger.info("%r skipped: missing %s", s.name, ", ".join(missing[s.name]))
            plan.append(item)
            continue
        enabled = s.enabled if s.enabled is not None else (current.enabled if current else True)
        desired = s.build(
            block_ids=block_ids,
            deployment_ids=deployment_ids,
            default_block=webhook_block,
            enabled=enabled,
        )
        if current is None:
            new_id = None if dry_run else client.create_automation(desired)
            plan.append(PlanItem(s.name, "created", id=new_id, desired=desired))
            continue
        assert current.id is not None
        changed = _changed_fields(desired, _as_core(current))
        if not changed:
            plan.append(PlanItem(s.name, "unchanged", id=current.id, desired=desired))
            continue
        if not dry_run:
            client.update_automation(current.id, desired)
        logger.info("%r: %s changed", s.name, ", ".join(changed))
        plan.append(PlanItem(s.name, "updated", id=current.id, desired=desired, details=changed))
    return plan


@dataclass(frozen=True)
class ServerAutomation:
    """An automation on the server, or one of the file that is not there yet."""

    name: str
    id: UUID | None
    enabled: bool | None
    #: In the file: "in sync", "differs" (an apply updates it), "missing" (an apply
    #: creates it), "skipped" (a block or deployment it names is missing); else "not managed".
    state: str


def list_automations(
    path: str | Path | None = DEFAULT_FILE,
    *,
    webhook_block: str = DEFAULT_WEBHOOK_BLOCK,
) -> list[ServerAutomation]:
    """Every automation on the server, then those of the file it does not have yet."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        plan: dict[str, PlanItem] = {}
        if path is not None:
            items = plan_automations(
                path, webhook_block=webhook_block, dry_run=True, skip_missing=True, client=client
            )
            plan = {i.name: i for i in items}
        states = {"unchanged": "in sync", "updated": "differs", "created": "missing"}
        result = [
            ServerAutomation(
                a.name,
                a.id,
                a.enabled,
                states.get(plan[a.name].status, plan[a.name].status)
                if a.name in plan
                else "not managed",
            )
            for a in sorted(_read_all_automations(client), key=lambda a: a.name)
        ]
    on_server = {r.name for r in result}
    result += [
        ServerAutomation(i.name, None, None, states.get(i.status, i.status))
        for i in plan.values()
        if i.name not in on_server
    ]
    return result


# --------------------------------------------------------------------------- command line


def default_file() -> Path:
    """``automations.yaml`` in the working directory, else the Prefect project's."""
    here = Path(DEFAULT_FILE)
    if here.exists():
        return here
    try:
        return project_root() / DEFAULT_FILE
    except ConfigError:
        return here
