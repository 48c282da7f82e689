"""Convergence prediction for sending systems: `mailflow serve`'s `/v1/flows/...` endpoints.

- `GET /v1/flows/<flow_id>/forecast[?cohorts=N]`: the latest forecast of each of the
  flow's last N entry cohorts (default 14), with the realised outcome of the cohorts
  whose window closed, and the flow's alerts.
- `GET /v1/flows/<flow_id>/recipients/<address-or-hash>`: the recipient's latest
  convergence propensity in that flow (personal data: tokens needed on an exposed port).

The answers come from ClickHouse (`flow_propensities`, `convergence_forecast`,
`cohort_outcomes`, `flow_alerts`): a ClickHouse server directly, or the embedded store
through the running job's admin endpoint (the job owns the embedded store; this process
never opens it). Queries are read-only and built from validated values only: a flow id
of letters, digits and `._:-` (at most 128), a 32-hex recipient hash, a cohort count.

>>> FlowQueries(lambda sql: ([], [])).forecast("welcome; DROP TABLE x")
Traceback (most recent call last):
...
ValueError: a flow id is 1-128 letters, digits or ._:- characters
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

FLOW_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
HASH = re.compile(r"^[0-9a-f]{32}$")
MAX_COHORTS = 120

#: query(sql[, parameters]) -> (columns, rows)
Query = Callable[..., tuple[list[str], list[Any]]]


class StoreUnavailable(Exception):
    """The store cannot be asked now (e.g. the job that owns the embedded store is down)."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return value


def _records(answer: tuple[list[str], list[Any]]) -> list[dict[str, Any]]:
    columns, rows = answer
    return [{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows]


class FlowQueries:
    """The flow endpoints' queries over one `query(sql) -> (columns, rows)` function."""

    def __init__(self, query: Query):
        self.query = query

    @staticmethod
    def check(flow_id: str, cohorts: int = 1) -> str:
        """The flow id, if it and the cohort count are valid (ValueError otherwise)."""
        if not FLOW_ID.match(flow_id):
            raise ValueError("a flow id is 1-128 letters, digits or ._:- characters")
        if not 1 <= cohorts <= MAX_COHORTS:
            raise ValueError(f"cohorts must be 1-{MAX_COHORTS}")
        return flow_id

    def forecast(self, flow_id: str, cohorts: int = 14) -> dict[str, Any]:
        flow = self.check(flow_id, cohorts)
        latest = _records(self.query(f"""
            SELECT cohort_day, max(f.as_of) AS as_of,
                   argMax(entered, f.as_of) AS entered, argMax(converged, f.as_of) AS converged,
                   argMax(expected_converged, f.as_of) AS expected_converged,
                   argMax(forecast_score, f.as_of) AS forecast_score,
                   argMax(lo80, f.as_of) AS lo80, argMax(hi80, f.as_of) AS hi80,
                   argMax(lo95, f.as_of) AS lo95, argMax(hi95, f.as_of) AS hi95
            FROM mailflow.convergence_forecast AS f FINAL WHERE flow_id = '{flow}'
            GROUP BY cohort_day ORDER BY cohort_day DESC LIMIT {cohorts}"""))
        outcomes = {r["cohort_day"]: r for r in _records(self.query(f"""
            SELECT cohort_day, entered, converged, score, window_days, closed_at
            FROM mailflow.cohort_outcomes FINAL WHERE flow_id = '{flow}'
            ORDER BY cohort_day DESC LIMIT {cohorts}"""))}
        alerts = _records(self.query(f"""
            SELECT cohort_day, as_of, forecast_score, hi80, trailing_score, margin, detail
            FROM mailflow.flow_alerts FINAL WHERE flow_id = '{flow}'
            ORDER BY as_of DESC LIMIT 20"""))
        days = sorted({r["cohort_day"] for r in latest} | set(outcomes), reverse=True)[:cohorts]
        by_day = {r["cohort_day"]: r for r in latest}
        return {"flow_id": flow, "cohorts": [
            {"cohort_day": day, "forecast": by_day.get(day), "outcome": outcomes.get(day)}
            for day in days], "alerts": alerts}

    def recipient(self, flow_id: str, recipient_hash: str) -> dict[str, Any] | None:
        flow = self.check(flow_id)
        if not HASH.match(recipient_hash):
            raise ValueError("give an email address or a 32-hex recipient hash")
        rows = _records(self.query(f"""
            SELECT flow_id, recipient_hash, score, as_of, kind, cohort_day, unsubscribe_risk,
                   advice
            FROM mailflow.flow_propensities FINAL
            WHERE flow_id = '{flow}' AND recipient_hash = '{recipient_hash}' LIMIT 1"""))
        return rows[0] if rows else None


def store_query(settings: Any) -> Query:
    """Read-only queries against the job's store: a ClickHouse server directly (a client of
    its own with `readonly=1`), the embedded store only through the running job (never
    opened here: the job owns it). The function takes the SQL and, optionally, values for
    its `{name:Type}` placeholders, which ClickHouse binds itself."""
    from mailflow.sqlcli import query_via_admin
    from sinks.clickhouse import ReadOnlyQueries, chdb_path

    dsn = settings.clickhouse_dsn
    if chdb_path(dsn) is not None:
        def via_job(sql: str, parameters: dict[str, Any] | None = None
                    ) -> tuple[list[str], list[Any]]:
            answer = query_via_admin(settings.admin_port, sql, timeout=30.0,
                                     parameters=parameters)
            if answer is None:
                raise StoreUnavailable(
                    "the embedded store is read through the running job (`mailflow run`), "
                    f"and no job answers on its admin port {settings.admin_port}")
            return answer
        return via_job
    clients: list[ReadOnlyQueries] = []  # connected at the first query: serve starts alone

    def direct(sql: str, parameters: dict[str, Any] | None = None
               ) -> tuple[list[str], list[Any]]:
        if not clients:
            clients.append(ReadOnlyQueries(dsn))
        columns, rows, _truncated = clients[0].query(sql, parameters)
        return columns, rows
    return direct
