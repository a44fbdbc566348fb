"""flows/monitoring: Prefect flows (see ARCHITECTURE)."""
