"""Prefect tasks: thin, retryable wrappers around the engine (one unit of real work each).

Tasks take block *names*, never secrets, and return small summaries, never data.
"""
