"""Every metric name and job scholar-ops uses, in one place (see docs/metrics.md)."""

from __future__ import annotations

PREFIX = "scholar_ops_"

# -- Pushgateway jobs -------------------------------------------------------------
JOB_BACKUP = "scholar-ops-backup"
JOB_DRILL = "scholar-ops-drill"
JOB_TESTS = "scholar-ops-tests"
JOB_SYSTEM = "scholar-ops-system"
JOB_DATABASES = "scholar-ops-databases"
JOB_APP = "scholar-ops-app"
JOB_EXPORT = "scholar-ops-metrics-export"
JOB_HEALTH = "scholar-ops-health"  # scraped, not pushed
JOB_COPY = "scholar-ops-copy"  # second copies (label: destination)
JOB_AUDIT = "scholar-ops-audit"  # the audit trail's tip (label: repository, the block)

COMPONENTS = ("postgres", "postgres-base", "redis", "chroma", "files")

# -- backups (labels: component, target) ----------------------------------------
BACKUP_LAST_RUN = "scholar_ops_backup_last_run_timestamp_seconds"
BACKUP_LAST_STATUS = "scholar_ops_backup_last_status"
BACKUP_LAST_SUCCESS = "scholar_ops_backup_last_success_timestamp_seconds"
BACKUP_LAST_FAILURE = "scholar_ops_backup_last_failure_timestamp_seconds"
BACKUP_DURATION = "scholar_ops_backup_duration_seconds"
BACKUP_SIZE = "scholar_ops_backup_size_bytes"
BACKUP_NEW = "scholar_ops_backup_new_bytes"
BACKUP_STORED = "scholar_ops_backup_stored_bytes"
BACKUP_DEDUP = "scholar_ops_backup_dedup_ratio"
BACKUP_SNAPSHOTS = "scholar_ops_backup_snapshots"
BACKUP_NEWEST_AGE = "scholar_ops_backup_newest_snapshot_age_seconds"
BACKUP_EXPECTED_INTERVAL = "scholar_ops_backup_expected_interval_seconds"
BACKUP_FALLBACK_USED = "scholar_ops_backup_fallback_used"  # 1: the last success used the fallback

# -- restore drills (labels: component, target) --------------------------------------
DRILL_LAST_RUN = "scholar_ops_drill_last_run_timestamp_seconds"
DRILL_LAST_STATUS = "scholar_ops_drill_last_status"
DRILL_LAST_SUCCESS = "scholar_ops_drill_last_success_timestamp_seconds"
DRILL_DURATION = "scholar_ops_drill_duration_seconds"

# -- second copies (label: destination, the repository block) ---------------------------
COPY_LAST_RUN = "scholar_ops_copy_last_run_timestamp_seconds"
COPY_LAST_STATUS = "scholar_ops_copy_last_status"
COPY_LAST_SUCCESS = "scholar_ops_copy_last_success_timestamp_seconds"
COPY_BYTES = "scholar_ops_copy_transferred_bytes"

# -- the audit trail (label: repository, the block; repo_id) -------------------------------
AUDIT_TIP_SEQUENCE = "scholar_ops_audit_tip_sequence"  # never goes down but in a rollback
AUDIT_TIP_INFO = "scholar_ops_audit_tip_info"  # 1, label hash: the newest record's

# -- test suites (label: suite) ----------------------------------------------------------
TEST_LAST_RUN = "scholar_ops_test_suite_last_run_timestamp_seconds"
TEST_LAST_STATUS = "scholar_ops_test_suite_last_status"
TEST_TESTS = "scholar_ops_test_suite_tests"
TEST_FAILED = "scholar_ops_test_suite_failed_tests"
TEST_DURATION = "scholar_ops_test_suite_duration_seconds"
TEST_HEALTH_SCORE = "scholar_ops_test_health_score"  # label: target (suite="all")

# -- system --------------------------------------------------------------------------
SYSTEM_CPU = "scholar_ops_system_cpu_usage_ratio"
SYSTEM_LOAD1 = "scholar_ops_system_load1"
SYSTEM_MEMORY_USED = "scholar_ops_system_memory_used_bytes"
SYSTEM_MEMORY_TOTAL = "scholar_ops_system_memory_total_bytes"
SYSTEM_DISK_USED = "scholar_ops_system_disk_used_bytes"  # label: mountpoint
SYSTEM_DISK_TOTAL = "scholar_ops_system_disk_total_bytes"  # label: mountpoint
SYSTEM_NET_RECEIVED = "scholar_ops_system_network_received_bytes_total"  # label: interface
SYSTEM_NET_SENT = "scholar_ops_system_network_sent_bytes_total"  # label: interface

# -- databases (labels: component, target) ------------------------------------------
DATABASE_UP = "scholar_ops_database_up"
PG_CONNECTIONS = "scholar_ops_postgres_connections"  # + state
PG_DATABASE_SIZE = "scholar_ops_postgres_database_size_bytes"
PG_LONGEST_TX = "scholar_ops_postgres_longest_transaction_seconds"
PG_REPLICATION_LAG = "scholar_ops_postgres_replication_lag_seconds"  # + replica
# WAL archiving (pg_stat_archiver; only where archive_mode is on)
PG_WAL_ARCHIVED = "scholar_ops_postgres_wal_archived_total"
PG_WAL_ARCHIVE_FAILED = "scholar_ops_postgres_wal_archive_failed_total"
PG_WAL_LAST_ARCHIVED = "scholar_ops_postgres_wal_last_archived_timestamp_seconds"
PG_WAL_LAST_FAILED = "scholar_ops_postgres_wal_last_failed_timestamp_seconds"
PG_WAL_PENDING = "scholar_ops_postgres_wal_pending_segments"
PG_RECOVERY_POINT_AGE = "scholar_ops_postgres_recovery_point_age_seconds"
REDIS_MEMORY = "scholar_ops_redis_memory_used_bytes"
REDIS_CLIENTS = "scholar_ops_redis_connected_clients"
REDIS_COMMANDS = "scholar_ops_redis_commands_processed_total"
REDIS_LAST_SAVE = "scholar_ops_redis_last_save_timestamp_seconds"
REDIS_KEYS = "scholar_ops_redis_keys"  # + db
CHROMA_COLLECTIONS = "scholar_ops_chroma_collections"
CHROMA_RECORDS = "scholar_ops_chroma_records"  # + collection

# -- application (label: endpoint) ------------------------------------------------------
APP_UP = "scholar_ops_app_up"
APP_RESPONSE = "scholar_ops_app_response_seconds"

# -- health service (label: service) ----------------------------------------------------
HEALTH_STATUS = "scholar_ops_health_check_status"
HEALTH_DURATION = "scholar_ops_health_check_duration_seconds"
HEALTH_OVERALL = "scholar_ops_health_overall_status"

# -- the export itself ------------------------------------------------------------------
EXPORT_LAST_SUCCESS = "scholar_ops_metrics_export_last_success_timestamp_seconds"
EXPORT_DURATION = "scholar_ops_metrics_export_duration_seconds"
COLLECTOR_UP = "scholar_ops_collector_up"  # label: collector
