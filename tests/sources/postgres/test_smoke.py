from __future__ import annotations

import psycopg

from sources.postgres.dump import backup_database
from sources.postgres.restore import restore_database


def test_smoke(source_db, new_db_name, local_repo):
    with psycopg.connect(**source_db.connect_kwargs(), autocommit=True) as c:
        c.execute(
            "CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g"
        )
        c.execute("CREATE SEQUENCE s; SELECT setval('s', 42)")
        c.execute("CREATE INDEX t_v ON t (v)")
    snap = backup_database(local_repo, source_db)
    print(snap.details)
    res = restore_database(local_repo, snap, source_db.with_db(new_db_name))
    print(res)
    assert not res.mismatches
    with psycopg.connect(**source_db.with_db(new_db_name).connect_kwargs()) as c:
        assert c.execute("select count(*) from t").fetchone()[0] == 1000  # type: ignore[index]
        assert c.execute("select last_value from s").fetchone()[0] == 42  # type: ignore[index]
