"""Redis adapter (engine, no Prefect import): consistent backups of a running server
and restores, into a fresh server or into a running one.

conninfo  connection settings (the password never appears in repr or logs)
sync      the replication handshake (SYNC) that streams the server's RDB without its disk
keyspace  key counts per database and type, sampled value digests, verification
dump      backup_redis: the RDB stream into the store, with the keyspace survey as details
restore   restore_redis_rdb / restore_redis_fresh (a new server from the RDB) and
          restore_redis_into (DUMP/RESTORE into a running server, then verification)

A backup needs no access to the server's disk, only a user allowed to read and to
replicate, e.g. ``ACL SETUSER backup on >password ~* +@read +@connection +info
+sync +replconf +multi +exec +function|list`` (tests/scholar_ops/sources/redis check this one).
Standalone servers (or each node of a cluster on its own); a restore into a running
server needs one that is at least as new as the local redis-server.
"""
