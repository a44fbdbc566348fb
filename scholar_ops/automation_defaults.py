"""Names the automations module and its command line share, importable without Prefect."""

DEFAULT_FILE = "automations.yaml"
DEFAULT_WEBHOOK_BLOCK = "scholar-ops-alertmanager"
