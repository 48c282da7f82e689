"""Every table of a job's store, in a form two runs can be compared by."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from sinks.clickhouse import ClickHouseStore

#: Columns that record wall-clock time (when a row was inserted or decided), not results.
WALL_CLOCK = frozenset({"ingested_at", "decided_at"})
#: Bookkeeping, not results.
NOT_RESULTS = frozenset({"schema_migrations"})


class Table(NamedTuple):
    columns: tuple[str, ...]
    rows: list[tuple]


def dump_tables(data_dir: Path) -> dict[str, Table]:
    """Every table of `mailflow` (views excluded: their rows are in their target tables)
    after merging (FINAL), without wall-clock columns, rows sorted; aggregate states
    (`flow_recipients_1h`) as their finalized values. A table added by a later migration
    is compared too, without touching this function. Run after the job has exited."""
    store = ClickHouseStore(f"chdb://{data_dir / 'clickhouse'}")
    try:
        _, tables = store.query(
            "SELECT name, engine FROM system.tables WHERE database = 'mailflow' "
            "AND engine NOT LIKE '%View' ORDER BY name")
        dumped = {}
        for name, engine in tables:
            if name in NOT_RESULTS:
                continue
            _, columns = store.query(
                "SELECT name, type FROM system.columns WHERE database = 'mailflow' "
                f"AND table = '{name}' ORDER BY position")
            kept = [(col, kind) for col, kind in columns if col not in WALL_CLOCK]
            selected = [f"finalizeAggregation({col})" if kind.startswith("AggregateFunction")
                        else col for col, kind in kept]
            final = " FINAL" if engine != "MergeTree" else ""
            rows = store.query(f"SELECT {', '.join(selected)} FROM mailflow.{name}{final} "
                               "ORDER BY ALL")[1]
            dumped[name] = Table(tuple(col for col, _ in kept), rows)
        return dumped
    finally:
        store.close()


def differences(expected: dict[str, Table], actual: dict[str, Table]) -> list[str]:
    """Which tables differ: row counts, the columns whose values differ (compared as
    sorted lists, column by column), and the first differing row."""
    out = []
    for name in sorted(set(expected) | set(actual)):
        a, b = expected.get(name), actual.get(name)
        if a == b:
            continue
        if a is None or b is None:
            out.append(f"{name}: only in {'actual' if a is None else 'expected'}")
            continue
        columns = [col for i, col in enumerate(a.columns)
                   if sorted(map(repr, (r[i] for r in a.rows)))
                   != sorted(map(repr, (r[i] for r in b.rows)))]
        first = next((i for i, (x, y) in enumerate(zip(a.rows, b.rows, strict=False))
                      if x != y), min(len(a.rows), len(b.rows)))
        out.append(f"{name}: {len(a.rows)} rows expected, {len(b.rows)} actual; columns "
                   f"differing: {columns or 'none alone (rows pair them differently)'}; "
                   f"first differing row {first}: "
                   f"{a.rows[first] if first < len(a.rows) else None!r} != "
                   f"{b.rows[first] if first < len(b.rows) else None!r}")
    return out
