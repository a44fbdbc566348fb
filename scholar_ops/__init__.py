"""scholar-ops: the operator-facing package (command line, demo, generated sample data)."""
