"""What the demo, the benchmarks and the tests stand up around the product.

Never used by the flows: throwaway observability servers (``pushgateway``,
``prometheus``: Prometheus and AlertManager), the alerting configuration
rendered for loopback (``alerting``), sample data of the AI Scholar
application (``sample``) and generated streams (``datagen``). Throwaway
PostgreSQL and Redis servers are the engine's own (restores and drills use
them): ``scholar_ops.sources.postgres.cluster`` and
``scholar_ops.sources.redis.server``. Every server runs through
``scholar_ops.sources.process``.
"""
