"""A second Redis backup after a small change stores little.

About 50 MB of cache-like values (1-10 KB, half text, half random bytes), then 1%
of the keys rewritten with new values of new sizes: the RDB keeps unchanged keys
in the same order, so with 16 KiB chunks the incremental backup stores about 7%
of the full one (the store's 1 MiB chunks would store nearly all of it again).
"""

from __future__ import annotations

import random

from scholar_ops.sources.redis.dump import backup_redis
from scholar_ops.sources.redis.restore import restore_redis_rdb
from scholar_ops.testbed.sample.redisvalues import text_pool, value


def test_second_backup_after_one_percent_of_keys_changed_stores_little(
    redis_source, source, local_repo, tmp_path
):
    rng = random.Random(11)
    pool = text_pool(rng)
    c = redis_source.client()
    pipe = c.pipeline(transaction=False)
    n = total = 0
    while total < 50_000_000:
        v = value(rng, rng.randint(1_000, 10_000), pool)
        pipe.set(f"cache:{n:08d}", v)
        n += 1
        total += len(v)
        if n % 500 == 0:
            pipe.execute()
    pipe.execute()

    full = backup_redis(local_repo, source, backup_type="full")
    for i in rng.sample(range(n), n // 100):
        pipe.set(f"cache:{i:08d}", value(rng, rng.randint(1_000, 10_000), pool))
    pipe.execute()
    c.close()
    incr = backup_redis(local_repo, source)

    stored_full = full.stats["bytes_stored"]
    stored_incr = incr.stats["bytes_stored"]
    ratio = stored_incr / stored_full
    print(
        f"\n{n} keys, RDB {full.details['rdb']['bytes'] / 1e6:.1f} MB: full stored "
        f"{stored_full / 1e6:.1f} MB, after 1% of keys changed {stored_incr / 1e6:.2f} MB "
        f"({ratio:.1%}), {incr.stats['chunks_new']} of {incr.stats['chunks_total']} chunks new"
    )
    assert ratio < 0.10
    rdb = restore_redis_rdb(local_repo, incr, tmp_path / "rdb")  # whole, and verified
    assert rdb.stat().st_size == incr.details["rdb"]["bytes"]
