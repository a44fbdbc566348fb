"""Redis: sessions with a TTL, cached answers per user, rate limit windows, fault switches."""

from __future__ import annotations

import redis

from scholar_ops.aischolar.cache import Cache


def _cache(client: redis.Redis) -> Cache:
    kw = client.connection_pool.connection_kwargs
    return Cache(f"redis://{kw['host']}:{kw['port']}/0", session_ttl=90, answer_ttl=600)


def test_sessions_expire(redis_client: redis.Redis):
    c = _cache(redis_client)
    c.new_session("tok", 7, "sotest-u")
    assert c.session("tok") == {"user_id": 7, "username": "sotest-u"}
    assert 0 < redis_client.ttl("aischolar:session:tok") <= 90
    c.end_session("tok")
    assert c.session("tok") is None


def test_answers_are_per_user_question_and_top_k_and_can_be_forgotten(redis_client: redis.Redis):
    c = _cache(redis_client)
    c.keep_answer(1, "What is RAG?", 5, {"answer": "a"})
    assert c.answer(1, "what is rag? ", 5) == {"answer": "a"}  # case and spaces ignored
    assert c.answer(1, "What is RAG?", 3) is None
    assert c.answer(2, "What is RAG?", 5) is None
    c.keep_answer(2, "What is RAG?", 5, {"answer": "b"})
    (key,) = redis_client.keys("aischolar:answer:1:*")
    assert 0 < redis_client.ttl(key) <= 600
    c.forget_answers(1)
    assert c.answer(1, "What is RAG?", 5) is None and c.answer(2, "What is RAG?", 5) is not None


def test_rate_limit_counts_per_user_per_minute(redis_client: redis.Redis):
    c = _cache(redis_client)
    results = [c.allow(1, 3)[0] for _ in range(5)]
    assert results == [True, True, True, False, False]
    assert c.allow(2, 3)[0]  # another user has a window of their own
    ok, retry = c.allow(1, 3)
    assert not ok and 0 < retry <= 60
    (key,) = redis_client.keys("aischolar:rate:1:*")
    assert 60 < redis_client.ttl(key) <= 120


def test_faults_round_trip(redis_client: redis.Redis):
    c = _cache(redis_client)
    assert c.faults() == {}
    c.set_faults({"search_500": True})
    assert c.faults() == {"search_500": True}
