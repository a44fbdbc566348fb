"""The health service: concurrent checks with timeouts (checks), their settings
(config), the FastAPI router any app can mount (router) and the standalone
monitoring service (service). No Prefect import."""
