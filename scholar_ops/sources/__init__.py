"""Source adapters (engine, no Prefect import): how each component of the AI Scholar
application is read into the store and written back.

postgres  logical dumps (schema archive + per-table COPY streams) and restores
"""
