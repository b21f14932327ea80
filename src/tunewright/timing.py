"""Where a run's seconds go: stages timed by name ("baselines", "baselines/zero_shot", ...), collected
for summary.json and the report's timing table. Stages deep in evaluation or training record into the
clock the pipeline installed (a context variable), so no function grows a timer argument just to
report its time; with no clock installed, `stage` only runs its block."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_CLOCK: ContextVar[dict[str, float] | None] = ContextVar("tunewright_stage_clock", default=None)
_PREFIX: ContextVar[str] = ContextVar("tunewright_stage_prefix", default="")


@contextmanager
def recording(seconds: dict[str, float]) -> Iterator[dict[str, float]]:
    """Stages timed inside the block add their wall time to `seconds`, keyed by their path."""
    token = _CLOCK.set(seconds)
    try:
        yield seconds
    finally:
        _CLOCK.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Times the block as `name`, nested under the enclosing stage ("evaluation/label_scoring")."""
    clock = _CLOCK.get()
    if clock is None:
        yield
        return
    path = f"{_PREFIX.get()}/{name}" if _PREFIX.get() else name
    clock.setdefault(path, 0.0)  # listed when it starts, so a parent comes before its parts
    token = _PREFIX.set(path)
    started = time.perf_counter()
    try:
        yield
    finally:
        _PREFIX.reset(token)
        clock[path] = clock.get(path, 0.0) + time.perf_counter() - started


def timing_rows(seconds: dict[str, float]) -> list[tuple[str, float, float | None]]:
    """(stage, seconds, share of its parent) in the order the stages ran; a top-level stage's share is
    of the top-level total."""
    total = sum(value for name, value in seconds.items() if "/" not in name) or 1.0
    rows = []
    for name, value in seconds.items():
        parent = name.rpartition("/")[0]
        whole = seconds.get(parent, total) if parent else total
        rows.append((name, value, value / whole if whole > 0 else None))
    return rows
