"""Answers of the LDAP servers remembered for a while, by an explicit clock.

A found answer is kept ``ldap_cache_timeout`` seconds, a "nothing there" one at most
``NEGATIVE_TTL`` (an entry added in LDAP is found within a minute); after that the question
goes to LDAP again, which is how renames, new addresses and deletions reach the engine.
The clock is a function (``mr_engine.clock.monotonic`` by default) so tests move time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from mr_engine import clock as wall

NEGATIVE_TTL = 60.0
MAX_ANSWERS = 200_000  # then everything is asked again (no unbounded growth)


class AnswerCache:
    """Memoizes ``compute()`` by ``key``: empty answers (None, [], False) for less long."""

    def __init__(self, ttl: float, clock: Callable[[], float] = wall.monotonic) -> None:
        self.ttl = ttl
        self.negative_ttl = min(ttl, NEGATIVE_TTL)
        self.clock = clock
        self._answers: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        now = self.clock()
        with self._lock:
            kept = self._answers.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        answer = compute()  # unlocked: a slow server must not hold up other questions
        self.put(key, answer, now)
        return answer

    def put(self, key: Hashable, answer: Any, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        with self._lock:
            if len(self._answers) >= MAX_ANSWERS:
                self._answers.clear()
            self._answers[key] = (now + (self.ttl if answer else self.negative_ttl), answer)

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()
