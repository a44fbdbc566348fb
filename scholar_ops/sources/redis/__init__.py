"""Redis adapter (engine, no Prefect import): consistent backups of a running server
and restores, into a fresh server or into a running one.

conninfo      connection settings (the password never appears in repr or logs)
client        redis-py errors as SourceError, ping, raw (unparsed) replies
info          INFO keyspace / server / persistence, function library names
survey        key counts per database and type (SCAN + TYPE), the ranges a restore must hit
digests       canonical value digests of sampled keys, and checking them after a restore
sync          the replication handshake (SYNC) that streams the server's RDB without its disk
server        throwaway redis-server processes (restores, drills, tests)
dump          backup_redis: the RDB stream into the store, with the keyspace survey as details
restore_rdb   restore_redis_rdb / restore_redis_fresh: a new server from the RDB
restore_into  restore_redis_into: DUMP/RESTORE into a running server, then verification
verify        verify_redis / verify_redis_rdb: a restored server against the manifest
restore       the public restore functions of the three above, as other layers import them

A backup needs no access to the server's disk, only a user allowed to read and to
replicate, e.g. ``ACL SETUSER backup on >password ~* +@read +@connection +info
+sync +replconf +multi +exec +function|list`` (tests/scholar_ops/sources/redis check this one).
Standalone servers (or each node of a cluster on its own); a restore into a running
server needs one that is at least as new as the local redis-server.
"""
