"""flows: Prefect flows (see ARCHITECTURE)."""
