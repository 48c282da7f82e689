"""Size- and age-bounded batching of output rows, driven by a supplied clock.

Sinks write far faster in large blocks (one ClickHouse insert of 5,000 rows
costs about what 5 single-row inserts do), but a quiet stream must not leave
rows waiting: a batch is released when it is full or when its oldest row has
waited `max_age_s`.

>>> batcher = RowBatcher(max_rows=3, max_age_s=0.5)
>>> batcher.add([1, 2], now=10.0)
[]
>>> batcher.add([3, 4], now=10.1)
[[1, 2, 3]]
>>> batcher.due_at()
10.6
>>> batcher.flush_due(now=10.7)
[[4]]
>>> batcher.pending
0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class RowBatcher(Generic[T]):
    """Collects rows; `add` and `flush_due` return the batches that are ready."""

    __slots__ = ("max_rows", "max_age_s", "_rows", "_since")

    def __init__(self, max_rows: int = 5000, max_age_s: float = 0.5,
                 rows: list[T] | None = None, since: float | None = None):
        if max_rows < 1 or max_age_s <= 0:
            raise ValueError("max_rows must be >= 1 and max_age_s > 0")
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._rows: list[T] = list(rows or [])
        self._since = since if self._rows else None

    @property
    def pending(self) -> int:
        return len(self._rows)

    def add(self, rows: Iterable[T], now: float) -> list[list[T]]:
        """Buffer `rows`; return full batches (and an overdue one)."""
        if self._since is None:
            self._since = now
        self._rows.extend(rows)
        ready: list[list[T]] = []
        while len(self._rows) >= self.max_rows:
            ready.append(self._rows[:self.max_rows])
            del self._rows[:self.max_rows]
            self._since = now
        if not self._rows:
            self._since = None
        ready.extend(self.flush_due(now))
        return ready

    def due_at(self) -> float | None:
        """When the oldest buffered row must go out, or None when empty."""
        return None if self._since is None else self._since + self.max_age_s

    def flush_due(self, now: float) -> list[list[T]]:
        due = self.due_at()
        return self.flush() if due is not None and now >= due else []

    def flush(self) -> list[list[T]]:
        """Release everything buffered (end of input, shutdown)."""
        rows, self._rows, self._since = self._rows, [], None
        return [rows] if rows else []

    def discard(self, unwanted: Callable[[T], bool]) -> int:
        """Drop buffered rows for which `unwanted(row)` is true (erasure); how many went.

        >>> batcher = RowBatcher(max_rows=10)
        >>> _ = batcher.add([("a", 1), ("b", 2), ("a", 3)], now=0.0)
        >>> batcher.discard(lambda row: row[0] == "a"), batcher.flush()
        (2, [[('b', 2)]])
        """
        kept = [row for row in self._rows if not unwanted(row)]
        dropped = len(self._rows) - len(kept)
        self._rows = kept
        if not kept:
            self._since = None
        return dropped

    def snapshot(self) -> tuple[list[T], float | None]:
        """Recovery state: a copy of the buffered rows and their age."""
        return list(self._rows), self._since
