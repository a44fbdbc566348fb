# The scholar-ops image: the Prefect worker (default command) and the health service
# (docker-compose.yml). Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t scholar-ops:latest .
FROM python:3.11-slim-bookworm

# pg_dump / pg_restore / psql for PostgreSQL targets: the client must be at least the
# server's major version (bookworm: 15; use the PGDG repository for newer servers).
# postgresql (the server, initdb, pg_basebackup): PostgreSQL restore drills restore into a
# new throwaway cluster, and point-in-time restores start the recovered data directory.
# redis-server: throwaway servers for Redis restore drills.
# chromium: the functionality tests' UI suite (Playwright drives it by executable_path;
# no browser download).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates postgresql-client postgresql \
       redis-server \
       chromium \
    && rm -rf /var/lib/apt/lists/*

# uv pinned (hadolint DL3013): the image builds the same way until this line changes
RUN pip install --no-cache-dir uv==0.13.9

ENV SCHOLAR_OPS_HOME=/opt/scholar-ops \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PREFECT_SERVER_ANALYTICS_ENABLED=false
WORKDIR /opt/scholar-ops

# dependencies first (a layer that changes only with uv.lock)
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project

# the installed package (scholar_ops: engine, command line) and the Prefect project
# that deployments run from (blocks, tasks, flows, deployments.yaml, automations.yaml)
COPY scholar_ops ./scholar_ops
COPY blocks ./blocks
COPY tasks ./tasks
COPY flows ./flows
COPY deployments.yaml automations.yaml ./
RUN uv sync --locked --no-dev

ENV PATH=/opt/scholar-ops/.venv/bin:$PATH
# a named volume on /var/lib/scholar-ops/repository takes this directory's owner. USER is
# numeric (hadolint DL3066): Kubernetes' runAsNonRoot can only check a number.
RUN groupadd --system --gid 10001 scholar-ops \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/scholar-ops --create-home \
       scholar-ops \
    && install -d -o scholar-ops -g scholar-ops /var/lib/scholar-ops/repository
USER 10001:10001

# Prefect's process worker is stopped with SIGINT (it was seen ignoring SIGTERM): `docker
# stop` sends this. The health service stops gracefully on either.
STOPSIGNAL SIGINT
CMD ["prefect", "worker", "start", "--pool", "scholar-ops", "--type", "process"]
