"""Fault injection and per-customer throttling — the failures a real client must survive.

A `FaultRule` matches calls by method and a glob on the path (`/v1/customers/*/carts/*/checkout`)
and fires on the Nth matching call (and the `repeat - 1` calls after it) or at a `rate`. Kinds:

- `throttle`: 429 with `Retry-After` and Microsoft's throttling body;
- `error`: a 5xx (default 500) before anything is done;
- `error_after_commit`: the call is carried out and committed, then answered with a 5xx;
- `latency`: the call waits `latencyMs` before it is handled;
- `drop`: the connection is closed without an answer, before anything is done;
- `drop_after_commit`: the call is committed, then the connection is closed;
- `accepted`: a 2xx answer becomes `202 Accepted` + `Location`; polling the location answers 202
  `polls` times, then the real answer (Microsoft's long-running-operation pattern).

The after-the-handler kinds (`*_after_commit`, `accepted`) count only calls that succeeded (2xx),
since there is nothing committed to report otherwise. Rules live in memory: a restart clears them.

Throttling is a token bucket per customer (the customer id in the path, else the partner), off by
default, refilled on the sandbox clock so tests can empty and refill it without waiting.
"""

from __future__ import annotations

import fnmatch
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FAULT_KINDS = frozenset({"throttle", "error", "error_after_commit", "latency", "drop", "drop_after_commit", "accepted"})


@dataclass
class FaultRule:
    """One configured fault; `matched` and `fired` count calls so tests can see what happened."""

    kind: str
    method: str = "*"
    path: str = "*"
    nth: int | None = 1
    repeat: int = 1
    rate: float | None = None
    status: int | None = None
    retry_after: int = 1
    latency_ms: int = 0
    polls: int = 1
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    matched: int = 0
    fired: int = 0

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FaultRule:
        kind = str(body.get("kind", ""))
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(sorted(FAULT_KINDS))}")
        rate = body.get("rate")
        nth = body.get("nth", None if rate is not None else 1)
        rule = cls(
            kind=kind,
            method=str(body.get("method", "*")).upper(),
            path=str(body.get("path", "*")),
            nth=int(nth) if nth is not None else None,
            repeat=int(body.get("repeat", 1)),
            rate=float(rate) if rate is not None else None,
            status=int(body["status"]) if body.get("status") is not None else None,
            retry_after=int(body.get("retryAfter", 1)),
            latency_ms=int(body.get("latencyMs", 0)),
            polls=int(body.get("polls", 1)),
        )
        if rule.nth is not None and rule.nth < 1:
            raise ValueError("nth counts from 1")
        if rule.rate is not None and not 0 <= rule.rate <= 1:
            raise ValueError("rate is a probability between 0 and 1")
        if rule.repeat < 1 or rule.retry_after < 0 or rule.latency_ms < 0 or rule.polls < 0:
            raise ValueError("repeat must be ≥ 1; retryAfter, latencyMs and polls must be ≥ 0")
        if rule.kind in ("error", "error_after_commit") and rule.status is not None and not 500 <= rule.status <= 599:
            raise ValueError("an error fault answers with a 5xx status")
        return rule

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "nth": self.nth,
            "repeat": self.repeat,
            "rate": self.rate,
            "status": self.status,
            "retryAfter": self.retry_after,
            "latencyMs": self.latency_ms,
            "polls": self.polls,
            "matched": self.matched,
            "fired": self.fired,
        }

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper())) and fnmatch.fnmatchcase(path, self.path)


class FaultInjector:
    """The active fault rules. `pick` counts a matching call and says whether a rule fires."""

    def __init__(self, *, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)

    def add(self, rule: FaultRule) -> FaultRule:
        self._rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        before = len(self._rules)
        self._rules = [rule for rule in self._rules if rule.id != rule_id]
        return len(self._rules) != before

    def clear(self) -> None:
        self._rules.clear()

    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def pick(self, method: str, path: str, kinds: frozenset[str]) -> FaultRule | None:
        """The first rule of one of `kinds` that fires for this call (every matching rule counts it)."""
        chosen: FaultRule | None = None
        for rule in self._rules:
            if rule.kind not in kinds or not rule.matches(method, path):
                continue
            rule.matched += 1
            if chosen is not None:
                continue
            if rule.rate is not None:
                fires = self._random.random() < rule.rate
            else:
                fires = rule.nth is not None and rule.nth <= rule.matched < rule.nth + rule.repeat
            if fires:
                rule.fired += 1
                chosen = rule
        return chosen


@dataclass
class _Bucket:
    tokens: float
    updated: datetime


class Throttle:
    """A token bucket per key (customer or partner); `take` answers the seconds to wait, or 0."""

    def __init__(self, *, enabled: bool = False, capacity: int = 50, refill_per_second: float = 10.0) -> None:
        self.enabled = enabled
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self._buckets: dict[str, _Bucket] = {}

    def configure(self, *, enabled: bool, capacity: int, refill_per_second: float) -> None:
        if capacity < 1 or refill_per_second <= 0:
            raise ValueError("capacity must be ≥ 1 and refillPerSecond > 0")
        self.enabled, self.capacity, self.refill_per_second = enabled, capacity, refill_per_second
        self._buckets.clear()

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "capacity": self.capacity, "refillPerSecond": self.refill_per_second}

    def take(self, key: str, now: datetime) -> int:
        if not self.enabled:
            return 0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.capacity), now)
        elapsed = max((now - bucket.updated).total_seconds(), 0.0)
        bucket.tokens = min(float(self.capacity), bucket.tokens + elapsed * self.refill_per_second)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / self.refill_per_second))
