"""Rate limits (GCRA) and the lockout after failed logins, on a fake clock."""

from __future__ import annotations

import pytest

from creditscore.runtime import LoginGuard, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate_and_how_long_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=4, clock=clock)
    assert [limiter.allow("k") for _ in range(4)] == [0.0] * 4
    wait = limiter.allow("k")
    assert wait == pytest.approx(0.5)  # one more fits after 1 / rate
    clock.now += 0.5
    assert limiter.allow("k") == 0.0
    assert limiter.allow("k") == pytest.approx(0.5)
    # Sustained: exactly the rate, over a long stretch.
    allowed = 0
    for _ in range(1000):
        clock.now += 0.05
        allowed += limiter.allow("k") == 0.0
    assert allowed == pytest.approx(2.0 * 50, abs=1)
    # Keys are independent.
    assert limiter.allow("other") == 0.0


def test_a_refused_request_costs_nothing_and_a_quiet_spell_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock)
    assert limiter.allow("k") == 0.0 and limiter.allow("k") == 0.0
    for _ in range(50):  # hammering while refused does not push the wait out
        assert limiter.allow("k") == pytest.approx(1.0)
    clock.now += 10
    assert limiter.allow("k") == 0.0 and limiter.allow("k") == 0.0


def test_a_cost_counts_as_that_many_requests() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10.0, burst=100, clock=clock)
    assert limiter.allow("p", cost=100) == 0.0
    assert limiter.allow("p", cost=10) == pytest.approx(1.0)
    assert limiter.allow("p", cost=101) > 0  # more than the burst never fits


def test_keys_are_bounded_least_recently_used_first() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_keys=3, clock=Clock())
    for key in ("a", "b", "c", "d"):
        limiter.allow(key)
    assert len(limiter) == 3
    assert limiter.allow("a") == 0.0  # forgotten: a fresh start
    assert limiter.allow("d") > 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)
    with pytest.raises(ValueError):
        RateLimiter(rate=1, burst=0.5)
    with pytest.raises(ValueError):
        LoginGuard(free_failures=0)
    with pytest.raises(ValueError):
        LoginGuard(base_lock=10, max_lock=5)


def test_failed_logins_lock_the_id_with_a_doubling_lock_and_a_success_clears() -> None:
    clock = Clock()
    guard = LoginGuard(free_failures=3, base_lock=1.0, max_lock=8.0, clock=clock)
    assert [guard.failed("acme") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert guard.locked_for("acme") == 0.0
    assert guard.failed("acme") == 1.0
    assert guard.locked_for("acme") == pytest.approx(1.0)
    clock.now += 1.0
    assert guard.locked_for("acme") == 0.0
    assert [guard.failed("acme") for _ in range(5)] == [2.0, 4.0, 8.0, 8.0, 8.0]
    guard.succeeded("acme")
    assert guard.locked_for("acme") == 0.0 and guard.failed("acme") == 0.0
    # An id that exists nowhere is treated the same: the guard never asks.
    assert [guard.failed("nobody") for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]
