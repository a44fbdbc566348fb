"""Prefect automations kept in ``automations.yaml`` and applied idempotently.

The file is read and checked without a server (``spec``, its webhook payloads by
``payloads``), then applied to the Prefect API by name (``apply``); the command line is
``scholar-ops automations check|list|apply`` (scholar_ops.cli.automations). Errors raised
on purpose are ``AutomationsError`` (``errors``; a ``ConfigError``: exit code 2).
"""

from scholar_ops.automation_defaults import DEFAULT_FILE, DEFAULT_WEBHOOK_BLOCK
from scholar_ops.automations.apply import (
    PlanItem,
    ServerAutomation,
    Status,
    alertmanager_alerts_url,
    apply_automations,
    apply_webhook_block,
    list_automations,
    plan_automations,
)
from scholar_ops.automations.errors import (
    AutomationFileError,
    AutomationsError,
    MissingReferenceError,
)
from scholar_ops.automations.spec import (
    ActionSpec,
    AutomationSpec,
    default_file,
    load_automations,
)
from scholar_ops.redaction import redact_url

__all__ = [
    "DEFAULT_FILE",
    "DEFAULT_WEBHOOK_BLOCK",
    "ActionSpec",
    "AutomationFileError",
    "AutomationSpec",
    "AutomationsError",
    "MissingReferenceError",
    "PlanItem",
    "ServerAutomation",
    "Status",
    "alertmanager_alerts_url",
    "apply_automations",
    "apply_webhook_block",
    "default_file",
    "list_automations",
    "load_automations",
    "plan_automations",
    "redact_url",
]
