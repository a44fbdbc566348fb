"""Redis: sessions (with a TTL), cached answers, per-user rate limits, fault switches."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import redis

SESSION = "aischolar:session:"
ANSWER = "aischolar:answer:"
RATE = "aischolar:rate:"
FAULTS = "aischolar:faults"


class Cache:
    def __init__(self, url: str, session_ttl: int, answer_ttl: int) -> None:
        self.r = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.session_ttl = session_ttl
        self.answer_ttl = answer_ttl

    # -- sessions
    def new_session(self, token: str, user_id: int, username: str) -> None:
        value = json.dumps({"user_id": user_id, "username": username})
        self.r.set(SESSION + token, value, ex=self.session_ttl)

    def session(self, token: str) -> dict[str, Any] | None:
        raw = self.r.get(SESSION + token)
        return json.loads(raw) if raw else None

    def end_session(self, token: str) -> None:
        self.r.delete(SESSION + token)

    # -- answers
    @staticmethod
    def _answer_key(user_id: int, question: str, top_k: int) -> str:
        digest = hashlib.sha256(f"{top_k}\0{question.strip().lower()}".encode()).hexdigest()
        return f"{ANSWER}{user_id}:{digest[:32]}"

    def answer(self, user_id: int, question: str, top_k: int) -> dict[str, Any] | None:
        raw = self.r.get(self._answer_key(user_id, question, top_k))
        return json.loads(raw) if raw else None

    def keep_answer(self, user_id: int, question: str, top_k: int, doc: dict[str, Any]) -> None:
        self.r.set(self._answer_key(user_id, question, top_k), json.dumps(doc), ex=self.answer_ttl)

    def forget_answers(self, user_id: int) -> None:
        keys = list(self.r.scan_iter(match=f"{ANSWER}{user_id}:*", count=500))
        if keys:
            self.r.delete(*keys)

    # -- rate limits
    def allow(self, user_id: int, limit: int) -> tuple[bool, int]:
        """(allowed, seconds until the window ends) for one more ask this minute."""
        now = int(time.time())
        key = f"{RATE}{user_id}:{now // 60}"
        pipe = self.r.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = int(pipe.execute()[0])
        return count <= limit, 60 - now % 60

    # -- faults
    def faults(self) -> dict[str, bool]:
        raw = self.r.get(FAULTS)
        return json.loads(raw) if raw else {}

    def set_faults(self, faults: dict[str, bool]) -> None:
        self.r.set(FAULTS, json.dumps(faults))
