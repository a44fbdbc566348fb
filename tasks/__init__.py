"""tasks: Prefect tasks (see ARCHITECTURE)."""
