"""flows/backup: Prefect flows (see ARCHITECTURE)."""
