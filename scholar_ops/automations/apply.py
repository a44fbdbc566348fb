"""Applying the automations file to the Prefect API, and listing what is there.

``apply_automations`` matches automations by name: a new one is created, a changed one is
updated in place (same id), an identical one is left alone, and automations that are not
in the file are never touched. Names of Webhook blocks and deployments are resolved to
ids first. With ``alertmanager_url`` it first creates or updates the Webhook block
(``apply_webhook_block``: POST ``<url>/api/v2/alerts``, ``Content-Type: application/json``).
``list_automations`` compares the server with the file.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from prefect.events.schemas.automations import AutomationCore
from prefect.exceptions import ObjectNotFound

from scholar_ops.automation_defaults import DEFAULT_FILE, DEFAULT_WEBHOOK_BLOCK
from scholar_ops.automations.errors import AutomationsError, MissingReferenceError
from scholar_ops.automations.spec import PLACEHOLDER_ID, AutomationSpec, load_automations
from scholar_ops.redaction import redact_url

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import Automation

logger = logging.getLogger(__name__)

ALERTMANAGER_ALERTS_PATH = "/api/v2/alerts"

Status = Literal["created", "updated", "unchanged", "skipped"]


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
