"""`make up` / `make down`: the whole system on one machine, in the background.

    python -m scholar_ops.stack up     [--home DIR] [--workers N] [--wait]
    python -m scholar_ops.stack down   [--home DIR]
    python -m scholar_ops.stack status [--home DIR]
    python -m scholar_ops.stack purge  [--home DIR]   (a stopped stack's data, all of it)

``Stack(home).up()`` starts, from the local binaries and Debian's packages, each
process in a session of its own with its log in ``<home>/logs/<name>.log``:

- notifications: the local webhook receiver and SMTP sink (scholar_ops.testbed.sinks),
  recording to ``<home>/notifications/*.jsonl`` and listing them on a page;
- the Pushgateway (``<home>/pushgateway``), AlertManager routing to those sinks
  (docker/alertmanager/alertmanager.yml rendered for loopback) and Prometheus with the
  alert rules of docker/prometheus/rules, scraping the Pushgateway, AlertManager, the
  health service and itself;
- the sample AI Scholar application's PostgreSQL (database ``aischolar`` holds the
  sample the backups take; ``aischolar_app`` the application's own), Redis (sample in
  databases 0 and 1, the application in 2; RDB and AOF in ``<home>/redis``), a Chroma
  server on ``<home>/chroma`` and the uploads in ``<home>/aischolar/uploads``; the sample
  is loaded once; then the application itself (scholar_ops.aischolar) and the health
  service (scholar_ops.monitoring.health.service);
- a Prefect server (``prefect server start``; PREFECT_HOME=<home>/prefect, SQLite there,
  or the database of PREFECT_API_DATABASE_CONNECTION_URL when it is set), the work pool
  ``scholar-ops`` (process), the blocks (``scholar-ops setup``: a local repository in
  ``<home>/repository``, the master key in a Secret block and ``<home>/master.key``, the
  targets named as deployments.yaml names them; the monitoring settings and the test
  plan; the second copy's repository block ``scholar-ops-offsite`` on
  ``<home>/offsite-repository``, its own key in the Secret block ``scholar-ops-offsite-key``
  and ``<home>/offsite.key``, which the copy-snapshots automation fills after each
  completed backup; blocks that exist are never replaced), every deployment of
  deployments.yaml (``prefect deploy --all``; the schedules active, the metrics export
  every minute), the automations of automations.yaml (their webhook posts to the
  stack's AlertManager), and N process workers;
- one run each of ``full-backup`` and ``metrics-export`` on the first ``up``.

Running as root, PostgreSQL runs as the ``postgres`` user; when that user cannot enter
``<home>`` (a mode-700 directory above it) its files go to
``/var/tmp/scholar-ops-stack-<hash of home>/postgres`` (persistent, linked from
``<home>/postgres``, named in state.json and removed by ``purge``).

``<home>/state.json`` records the ports (the tools' usual ones when free, else free
loopback ports; kept for the next ``up``) and each process started, by pid and start time
(/proc/<pid>/stat), so ``down`` stops exactly those and never a process that reused a pid.
``up`` on a running, healthy stack starts nothing; on a half-started one it starts what is
missing. ``down`` stops the workers first (SIGINT: a Prefect process worker ignores
SIGTERM; then SIGTERM, then SIGKILL), the Prefect server last, then whatever still carries
the stack's mark in its environment (SCHOLAR_OPS_STACK_HOME=<home>: a flow run a worker
started). Data stays for the next ``up``.

Exit status of the command: 0 done; 1 something did not start or stop (the line names it
and its log); 2 bad usage or a problem to fix first (a port taken by another process, a
binary missing: the line names the package); 3 ``status``: not (entirely) running.
"""

from scholar_ops.stack.procs import StackError
from scholar_ops.stack.stack import DEFAULT_PORTS, Stack, StackState, free_ports

__all__ = ["DEFAULT_PORTS", "Stack", "StackError", "StackState", "free_ports"]
