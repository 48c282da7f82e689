"""What the sinks count, and the shape of whoever counts it.

The sinks sit below `flows/`, so they do not import the job's counters
(`flows.stats.STATS`); the flow hands them in. Anything with the method will do,
and by default nothing is counted:

>>> class Tally:
...     def __init__(self) -> None:
...         self.rows = 0
...     def record_insert(self, table: str, rows: int, seconds: float) -> None:
...         self.rows += rows
>>> tally: InsertCounter = Tally()
>>> tally.record_insert("mailflow.events", 3, 0.01); tally.rows
3
>>> NO_COUNTS.record_insert("mailflow.events", 3, 0.01)
"""

from __future__ import annotations

from typing import Protocol


class InsertCounter(Protocol):
    """Counts ClickHouse inserts (`flows.stats.JobStats` is one)."""

    def record_insert(self, table: str, rows: int, seconds: float) -> None:
        """`rows` rows stored in `table` by one insert that took `seconds`."""


class OutputFailureCounter(Protocol):
    """Counts Kafka output messages that were lost (`flows.stats.JobStats` is one)."""

    def record_output_failure(self, topic: str, error: str) -> None:
        """One message to `topic` refused or never acknowledged, with the broker's error."""


class NoCounts:
    """Counts nothing: the default for a sink used on its own (a test, a tool)."""

    def record_insert(self, table: str, rows: int, seconds: float) -> None:
        pass

    def record_output_failure(self, topic: str, error: str) -> None:
        pass


NO_COUNTS = NoCounts()
