"""Prefect blocks and the glue that turns them into engine objects.

Blocks hold configuration and secrets only; the engine (``vault``) receives
plain values and never imports Prefect.
"""
