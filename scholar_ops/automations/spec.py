"""The automations file: reading it, validating it, and the specs it gives.

The file lists automations in Prefect's own format (what ``prefect automation create
--from-file`` reads), except that the ids an action needs are given by name and resolved
at apply time, since ids differ from one server to the next:

- ``call-webhook``: ``block: <name>`` of a Webhook block; without it, the AlertManager
  webhook block (``webhook_block``, default ``scholar-ops-alertmanager``);
- ``run-deployment`` (and the other deployment actions with ``source: selected``):
  ``deployment: <flow name>/<deployment name>``.

``load_automations`` checks the file before anything reaches the server: unknown or
misspelled keys (Prefect's models silently ignore them), Prefect's own validation, and
every webhook payload template rendered with sample runs (scholar_ops.automations.payloads).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args
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
from pydantic import BaseModel, ValidationError

from scholar_ops.automation_defaults import DEFAULT_FILE, DEFAULT_WEBHOOK_BLOCK
from scholar_ops.automations.errors import AutomationFileError
from scholar_ops.automations.payloads import check_payload
from scholar_ops.project import project_root
from scholar_ops.vault.errors import ConfigError

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
                check_payload(
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


def default_file() -> Path:
    """``automations.yaml`` in the working directory, else the Prefect project's."""
    here = Path(DEFAULT_FILE)
    if here.exists():
        return here
    try:
        return project_root() / DEFAULT_FILE
    except ConfigError:
        return here
