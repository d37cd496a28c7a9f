"""The worker process's runtime (workers/runtime.py): one per process, never a parent's."""

from __future__ import annotations

import os
from typing import Any

import pytest

from workers.runtime import ProcessRuntime


class Made:
    """Stands in for a Runtime: the process that made it, and whether it was closed."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_forked_child_makes_its_own_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime is made on first use and kept; a child process (another pid) makes its
    own, and shutting down closes only its own, never the parent's loop and engine."""
    made: list[Made] = []

    def make() -> Any:
        made.append(Made())
        return made[-1]

    runtime = ProcessRuntime(make)
    parent = runtime()
    assert runtime() is parent and len(made) == 1

    monkeypatch.setattr(os, "getpid", lambda: parent.pid + 1)  # as in a forked child
    child = runtime()
    assert child is not parent and child.pid == parent.pid + 1
    runtime.shutdown()
    assert child.closed and not parent.closed

    monkeypatch.setattr(os, "getpid", lambda: parent.pid + 2)
    inherited = ProcessRuntime(make)
    inherited._current = parent  # type: ignore[assignment]
    inherited.shutdown()  # a parent's runtime is dropped, not closed
    assert not parent.closed and inherited._current is None
