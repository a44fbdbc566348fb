#!/usr/bin/env bash
# Install what the tests and the demo need on a Debian 12 machine, as root.
# Idempotent: installs only what is missing; runs `apt-get update` at most once,
# and only when a Debian package has to be installed.
#
#   scripts/install-deps.sh          uv and the Debian packages
#   scripts/install-deps.sh uv       uv only (enough for lint/format/type checks)
#   scripts/install-deps.sh system   the Debian packages only
set -euo pipefail

mode="${1:-all}"
case "$mode" in
    all | uv | system) ;;
    *) echo "usage: $0 [all|uv|system]" >&2; exit 2 ;;
esac

log() { printf 'install-deps: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        as_root apt-get update -qq
        apt_updated=1
    fi
    log "apt-get install $*"
    as_root apt-get install -y -qq --no-install-recommends "$@"
}

# --- uv ----------------------------------------------------------------------
export PATH="$HOME/.local/bin:$PATH"
if [ "$mode" != system ] && ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    log "pip install uv"
    # Debian's own python3 is "externally managed" (PEP 668): fall back to
    # --break-system-packages there; uv is a standalone binary, harmless.
    python3 -m pip install --quiet uv 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages uv
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
fi

if [ "$mode" = uv ]; then
    log "ok"
    exit 0
fi

# --- Debian packages ---------------------------------------------------------
pkgs=()

# PostgreSQL server binaries: on PATH, or in the highest /usr/lib/postgresql/*/bin.
pg_server_found=0
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 \
    && command -v postgres >/dev/null 2>&1; then
    pg_server_found=1
else
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
            pg_server_found=1
        fi
    done
fi
if [ "$pg_server_found" -eq 0 ] \
    || ! command -v pg_dump >/dev/null 2>&1 || ! command -v pg_restore >/dev/null 2>&1; then
    pkgs+=(postgresql postgresql-client)
fi

command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
command -v restic >/dev/null 2>&1 || pkgs+=(restic)
command -v zstd >/dev/null 2>&1 || pkgs+=(zstd)
# Monitoring: the tests run Prometheus, the Pushgateway and AlertManager, and check
# the configuration with promtool and amtool (both come with these packages).
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || pkgs+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || pkgs+=(prometheus-pushgateway)
command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 \
    || pkgs+=(prometheus-alertmanager)
# docker/ is checked by Docker Compose and hadolint from the dev dependencies (uv sync), not by
# Debian's docker-compose 1.29.2, which rejects Compose Specification files.
# Functionality testing: the UI suite drives Debian's Chromium through Playwright (no
# browser download: playwright is told executable_path=/usr/bin/chromium); the
# performance benchmark measures the load generator beside wrk on the same endpoint.
command -v chromium >/dev/null 2>&1 || pkgs+=(chromium)
command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
# Point-in-time recovery benchmark (bench/pitr_bench.py): WAL archiving and restore to
# a time measured side by side with pgBackRest, on the same database and WAL.
command -v pgbackrest >/dev/null 2>&1 || pkgs+=(pgbackrest)
# GNU time (/usr/bin/time, not the shell keyword): that benchmark's per-segment peak RSS
# and CPU of archive_command / restore_command.
[ -x /usr/bin/time ] || pkgs+=(time)
# runuser (util-linux) starts PostgreSQL as an unprivileged user; it is essential
# on Debian, but check anyway.
command -v runuser >/dev/null 2>&1 || pkgs+=(util-linux)

if [ "${#pkgs[@]}" -gt 0 ]; then
    apt_install "${pkgs[@]}"
fi

# PostgreSQL refuses to run as root: the fixtures run it as this user, which the
# Debian package creates; create it if some other install left it out.
if ! id -u postgres >/dev/null 2>&1; then
    log "creating system user postgres"
    if getent group postgres >/dev/null 2>&1; then group_opt=(--gid postgres); else group_opt=(--user-group); fi
    as_root useradd --system "${group_opt[@]}" --home-dir /var/lib/postgresql \
        --no-create-home --shell /bin/bash postgres
fi

log "ok"
