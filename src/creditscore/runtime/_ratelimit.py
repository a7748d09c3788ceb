"""Rate limits and login lockout at the edge: in memory, per process.

``RateLimiter`` is the generic cell rate algorithm (GCRA, the token bucket written
as one timestamp per key): ``rate`` requests a second on average, ``burst`` at
once after a quiet spell. A request of ``cost`` moves the key's theoretical
arrival time (TAT) on by ``cost / rate`` seconds; it is allowed while the TAT stays
within ``burst / rate`` seconds of now, and refused otherwise with how long to wait.
One float per key, O(1) per request, nothing to sweep: a key whose TAT is in the
past is as good as absent.

``LoginGuard`` counts failed logins per client id: after ``free_failures`` in a row,
each further failure locks the id for ``base_lock`` seconds, doubling up to
``max_lock``; a success clears the count. It knows nothing of which ids exist, so
it treats a real id and an invented one alike.

Both keep at most ``max_keys`` keys (least recently used dropped first), so a
spray of addresses or invented ids costs bounded memory; dropping a key forgets
its history, which an attacker can use only to reset their own limits.

Why not a library: ``limits`` (the one most used) was measured at 2-3 µs per hit,
but its in-memory storage runs a timer thread every 10 ms that walks every key and
reads the wall clock. Under a spray of keys that walk is the attacker's lever;
GCRA needs neither. The state is per replica: with N gateway replicas a caller
spread over all of them gets up to N times each limit (docs/security.md).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["LoginGuard", "RateLimiter"]


class RateLimiter:
    """GCRA per key: ``allow(key)`` is 0.0 when the request may go, else the
    seconds to wait before it could."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
        self._tolerance = burst / rate
        self._max_keys = max_keys
        self._clock = clock
        self._tat: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tat)

    def allow(self, key: str, cost: float = 1.0) -> float:
        now = self._clock()
        tat = self._tat.get(key, now)
        if tat < now:
            tat = now
        new_tat = tat + cost * self._interval
        wait = new_tat - now - self._tolerance
        if wait > 1e-9:
            return wait
        self._tat[key] = new_tat
        self._tat.move_to_end(key)
        if len(self._tat) > self._max_keys:
            self._tat.popitem(last=False)
        return 0.0


class LoginGuard:
    """Failed logins per client id, and the lockout they earn."""

    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_lock: float = 1.0,
        max_lock: float = 300.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free_failures < 1 or base_lock <= 0 or max_lock < base_lock:
            raise ValueError("a login guard needs free_failures >= 1 and 0 < base_lock <= max_lock")
        self.free_failures = free_failures
        self.base_lock = base_lock
        self.max_lock = max_lock
        self._max_keys = max_keys
        self._clock = clock
        #: client id -> (failures in a row, locked until)
        self._state: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._state)

    def locked_for(self, key: str) -> float:
        """Seconds the id stays locked (0.0: it may try)."""
        held = self._state.get(key)
        if held is None:
            return 0.0
        return max(0.0, held[1] - self._clock())

    def failed(self, key: str) -> float:
        """Counts a failure; returns the lock it earned (0.0: none yet)."""
        failures, _ = self._state.get(key, (0, 0.0))
        failures += 1
        lock = 0.0
        if failures > self.free_failures:
            lock = min(self.max_lock, self.base_lock * 2.0 ** (failures - self.free_failures - 1))
        self._state[key] = (failures, self._clock() + lock)
        self._state.move_to_end(key)
        if len(self._state) > self._max_keys:
            self._state.popitem(last=False)
        return lock

    def succeeded(self, key: str) -> None:
        self._state.pop(key, None)
