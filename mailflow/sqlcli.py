"""`mailflow sql`: one query against the store, through a running job or directly."""

from __future__ import annotations

import csv
import io
import sys
import urllib.error
import urllib.request
from datetime import date, datetime
from typing import Any

import orjson

from flows.settings import Settings
from sinks.clickhouse import StoreError, chdb_path, redact_dsn, store_for


def query_via_admin(port: int, sql: str, timeout: float = 300.0,
                    parameters: dict[str, Any] | None = None
                    ) -> tuple[list[str], list[list[Any]]] | None:
    """Ask the running job (None if no job answers on `port`); `parameters` are bound to
    the query's `{name:Type}` placeholders by ClickHouse."""
    url = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=0.5) as resp:
            info = orjson.loads(resp.read())
    except (OSError, ValueError):
        return None
    if "clickhouse_url" not in info:
        return None
    if parameters:
        request = urllib.request.Request(
            f"{url}/sql", data=orjson.dumps({"query": sql, "parameters": parameters}),
            headers={"Content-Type": "application/json"}, method="POST")
    else:
        request = urllib.request.Request(f"{url}/sql", data=sql.encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            answer = orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise StoreError(orjson.loads(exc.read()).get("error", str(exc))) from None
    if answer.get("truncated"):
        print(f"mailflow sql: the answer was cut at {len(answer['rows'])} rows (the job's "
              "limit for ad-hoc queries); add a LIMIT or aggregate", file=sys.stderr)
    return answer["columns"], answer["rows"]


def run_query(settings: Settings, sql: str) -> tuple[list[str], list[Any]]:
    dsn = settings.clickhouse_dsn
    if chdb_path(dsn) is not None:
        via_job = query_via_admin(settings.admin_port, sql)
        if via_job is not None:
            return via_job
        if not chdb_path(dsn).exists():  # type: ignore[union-attr]
            raise StoreError(f"no store at {chdb_path(dsn)} yet: run `mailflow demo` or "
                             "`mailflow run` first (or set MAILFLOW_DATA_DIR)")
    try:
        return store_for(dsn).query(sql)
    except StoreError:
        raise
    except Exception as exc:  # the server's message is the useful part
        text = redact_dsn(str(exc).strip())
        raise StoreError(text.splitlines()[0] if text else repr(exc)) from None


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_table(columns: list[str], rows: list[Any]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) and bool(rows)
               for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return " | ".join(v.rjust(w) if num else v.ljust(w)
                          for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(columns), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def format_csv(columns: list[str], rows: list[Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_cell(v) if v is not None else "" for v in row] for row in rows])
    return buf.getvalue().rstrip("\n")


def format_json(columns: list[str], rows: list[Any]) -> str:
    return orjson.dumps([dict(zip(columns, row, strict=True)) for row in rows],
                        default=str).decode()


def run_sql(settings: Settings, sql: str, fmt: str) -> int:
    try:
        columns, rows = run_query(settings, sql)
    except StoreError as exc:
        print(f"mailflow sql: {exc}", file=sys.stderr)
        return 1
    formatter = {"table": format_table, "csv": format_csv, "json": format_json}[fmt]
    print(formatter(columns, rows))
    return 0
