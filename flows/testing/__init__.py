"""flows/testing: Prefect flows (see ARCHITECTURE)."""
