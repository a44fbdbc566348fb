"""Monitoring engine (no Prefect import): metric names, collectors, Pushgateway
pushes, health checks. See docs/metrics.md for the contract."""
