"""Backup flows: full, incremental, restore, verify, retention, catalog."""
