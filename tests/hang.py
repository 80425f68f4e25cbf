"""The one limit on every wait in the tests, and the one way to wait for a condition.

A test never waits for a fixed time and never gives a slow step a deadline: it waits for the condition it
needs (a job's status, a file, a page's text), and gives up only when the wait has clearly hung. The suite
runs on a shared 2-core CI machine, possibly beside a second copy of itself, so how long anything takes there
says nothing; only a wait that never ends is a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

HANG_S = 900.0
"""How long a wait lasts before the test calls it a hang. Not a speed check: a busy machine never reaches it,
only a wait that would never end does. Also the timeout of requests to local servers, of subprocesses and of
Playwright's actions and expect(), so that nothing in the tests runs on a shorter clock."""


def wait_until(cond: Callable[[], T], describe: Callable[[], str] = lambda: "", interval: float = 0.05) -> T:
    """Polls cond() every `interval` seconds until it returns something truthy, and returns that value.

    After HANG_S without it, fails with AssertionError("hung: " + describe()); describe() is only called then,
    so it may be slow or read the state that explains the hang."""
    end = time.monotonic() + HANG_S
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError("hung: " + describe())
        time.sleep(interval)
