"""The reference AI Scholar application: the target of the functionality tests.

A small but real RAG backend on the demo's PostgreSQL, Redis and Chroma: token login,
document upload (text and markdown) chunked and embedded with a deterministic local
embedding, search, ask (retrieval plus an extractive answer citing its sources,
answers cached and asks rate-limited in Redis), the health router, its OpenAPI
schema, and a small web frontend. Fault switches (``/api/admin/faults``) inject
realistic breakage so that every suite can be shown to catch it. docs/aischolar.md.

It knows nothing of the tools that back it up and test it (import-linter contract).
"""
