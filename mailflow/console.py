"""The operator console's data: what `mailflow serve` answers under `/ui/api/`.

The page itself is static (`mailflow/ui/`, shipped in the package); everything it shows
comes from here, as JSON with times in epoch milliseconds:

- `now`: the decisions the server holds (the materialised `mailflow.throttle`), each as it
  applies now, newest first, with its evidence. No store needed.
- `history`: one sender/provider pair over a span (24 h by default): its decisions from
  `throttle_decisions` and the signal rates that drove them from `metrics_1m`.
- `flows`: convergence score, engagement depth (human and raw) and negative rate per flow
  from `convergence`, and the newest `lift` per flow.
- `models`: prequential ROC AUC and log loss per model from `model_metrics`, with the drift
  and reset events from `model_events`.
- `replies`: volumes per queue and intent, the automation rate and times to first response.
- `tracking`: clicks and opens, human and machine, from `metrics_1m`; redirects and
  refusals from the tracking edge's own counters (`mailflow track`'s `/metrics`).

Every query is read-only, takes its values as ClickHouse parameters (`{name:Type}`,
never spliced into the text), and is bounded by time. The time it ends at is the newest
the data knows (`end`), not the wall clock: a replay of last month's mail, or the demo's
accelerated clock, has its own "now". Spans are cut into at most `MAX_POINTS` buckets.
"""

from __future__ import annotations

import hashlib
import hmac
import http.cookies
import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from mailflow.http import matches_any
from operators.decision_view import parse_time
from schemas.mailbox_providers import provider_key

#: query(sql, parameters) -> (columns, rows): flow_api.store_query's functions
Query = Callable[..., tuple[list[str], list[Any]]]

MAX_POINTS = 400  # per series: a laptop screen is about this many pixels wide for a chart
MAX_HOURS = 24 * 31
WINDOWS = ("1h", "24h", "7d")
HOUR_MS = 3_600_000
EARLIEST_MS = 946_684_800_000  # 2000-01-01: no mail data ends before it
DAY_MS = 24 * HOUR_MS
#: How far back "the newest time the data knows" is looked for first: a live deployment
#: finds it in the newest partitions; a replay of older mail falls back to `OLDEST_DAYS`.
RECENT_DAYS = 2
OLDEST_DAYS = 400
_PAIR_PART = re.compile(r"^[^\x00-\x1f\x7f]{1,320}$")


class BadRequest(ValueError):
    """A parameter the console's API cannot take (the message is the client's answer)."""


def _ms(value: Any) -> int | None:
    """Epoch milliseconds of a decision record's time (RFC 3339; None if none or unreadable).
    Times from the store are converted by the queries themselves.

    >>> _ms("2026-12-01T10:00:00.250Z"), _ms(None), _ms("soon")
    (1796119200250, None, None)
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        seconds = parse_time(value)
    except (ValueError, OverflowError, OSError):
        return None
    return None if seconds is None else round(seconds * 1000)


def _number(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole-number parameter within [low, high] (BadRequest otherwise).

    >>> _number({"hours": "6"}, "hours", 24, 1, 744), _number({}, "hours", 24, 1, 744)
    (6, 24)
    >>> _number({"hours": "0"}, "hours", 24, 1, 744)
    Traceback (most recent call last):
    ...
    mailflow.console.BadRequest: hours must be a whole number from 1 to 744
    """
    text = params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 16 and low <= int(text) <= high):
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(text)


def bucket_seconds(span_ms: int, smallest: int = 60) -> int:
    """The bucket that cuts a span into at most `MAX_POINTS` points, in whole minutes
    (or `smallest` seconds).

    >>> bucket_seconds(24 * HOUR_MS), bucket_seconds(HOUR_MS), bucket_seconds(7 * DAY_MS)
    (240, 60, 1560)
    """
    seconds = -(-span_ms // 1000 // MAX_POINTS)
    return max(smallest, -(-seconds // 60) * 60)


def _series(columns: list[str], rows: list[Any], names: tuple[str, ...]) -> dict[str, list]:
    """Column-wise values of the `names` asked, each under its name without the `n_` that
    keeps a sum's alias apart from its column. Named, not taken from `columns`: an empty
    answer through the admin port comes without its columns.

    >>> _series(["t", "n_clicks"], [(1, 5), (2, 7)], ("t", "n_clicks"))
    {'t': [1, 2], 'clicks': [5, 7]}
    >>> _series([], [], ("t", "n_clicks"))
    {'t': [], 'clicks': []}
    """
    index = {c: i for i, c in enumerate(columns)}
    return {name.removeprefix("n_"): [row[index[name]] for row in rows] for name in names}


def _rate(hits: list[float], base: list[float]) -> list[float | None]:
    """hits / base per bucket, None where nothing was at stake (a gap in the chart)."""
    return [round(h / b, 6) if b else None for h, b in zip(hits, base, strict=True)]


class ConsoleData:
    """The `/ui/api/*` answers over a `ThrottleClient` (decisions held in memory) and a
    read-only store query (None: no store configured; those panels answer 503)."""

    def __init__(self, client: Any, query: Query | None, track_url: str | None = None,
                 clock: Callable[[], float] = time.time):
        self.client = client
        self.query = query
        self.track_url = track_url  # the tracking edge's base URL, for its counters
        self.clock = clock

    # --- helpers ------------------------------------------------------------------------
    def _rows(self, sql: str, **parameters: Any) -> tuple[list[str], list[Any]]:
        if self.query is None:
            raise LookupError("the console's charts need the store: none configured")
        return self.query(sql, parameters)

    def _end(self, params: dict[str, str], table: str, column: str) -> int:
        """The span's end: `end` if given, else the newest `column` in `table` (looked for
        in the last RECENT_DAYS first, then OLDEST_DAYS), else the wall clock."""
        if "end" in params:
            return _number(params, "end", 0, EARLIEST_MS, 10**13)
        now = int(self.clock() * 1000)
        for days in (RECENT_DAYS, OLDEST_DAYS):
            _, rows = self._rows(
                f"SELECT toUnixTimestamp64Milli(toDateTime64(max({column}), 3)) AS newest, "
                f"count() AS n FROM mailflow.{table} "
                f"WHERE {column} >= fromUnixTimestamp64Milli({{since:Int64}})",
                since=now - days * DAY_MS)
            if rows and rows[0][1]:
                return int(rows[0][0]) + 60_000  # through the newest minute
        return now

    def _start(self, table: str, column: str, start: int, end: int,
               where: str = "", **parameters: Any) -> int:
        """The span's start: `start`, or the first `column` after it when the data begins
        later (a replay of an hour is drawn over that hour, not over a week of nothing)."""
        _, rows = self._rows(
            f"SELECT toUnixTimestamp64Milli(toDateTime64(min({column}), 3)) AS first, "
            f"count() AS n FROM mailflow.{table} "
            f"WHERE {column} >= fromUnixTimestamp64Milli({{start:Int64}}) "
            f"AND {column} < fromUnixTimestamp64Milli({{end:Int64}}) {where}",
            start=start, end=end, **parameters)
        if rows and rows[0][1]:
            return max(start, int(rows[0][0]) // 60_000 * 60_000)
        return start

    # --- now ----------------------------------------------------------------------------
    def now(self) -> dict[str, Any]:
        """The decisions held, each as it applies now, newest first."""
        now = self.clock()
        decisions = []
        counts = {"pause": 0, "slow": 0, "allow": 0}
        for effective in self.client.held_decisions(now):
            record = effective.decision or {}
            sender, _, domain = effective.key.partition("|")
            counts[effective.action] = counts.get(effective.action, 0) + 1
            evidence = record.get("evidence")
            decisions.append({
                "key": effective.key, "sender": sender, "domain": domain,
                "action": effective.action, "rate_factor": effective.rate_factor,
                "decided_action": record.get("action", "allow"),
                "until": _ms(record.get("until")), "reason": effective.reason,
                "decided_reason": record.get("reason", ""), "seq": effective.seq,
                "event_ts": _ms(record.get("event_ts")),
                "decided_at": _ms(record.get("decided_at")),
                "evidence": evidence if isinstance(evidence, dict) else {},
            })
        decisions.sort(key=lambda d: (d["decided_at"] or 0, d["seq"]), reverse=True)
        return {"now": int(now * 1000), "live": bool(self.client.live),
                "error": self.client.error or self.client.failing,
                "decisions": decisions, "counts": counts}

    # --- history ------------------------------------------------------------------------
    def history(self, params: dict[str, str]) -> dict[str, Any]:
        sender, domain = params.get("sender", ""), params.get("domain", "")
        if not (_PAIR_PART.match(sender) and _PAIR_PART.match(domain)):
            raise BadRequest("sender and domain are required (the pair's key parts; * for "
                             "all)")
        if domain != "*":
            domain = provider_key(domain)
        hours = _number(params, "hours", 24, 1, MAX_HOURS)
        end = self._end(params, "metrics_1m", "minute")
        pair_filter = ("AND ({sender:String} = '*' OR sender = {sender:String}) "
                       "AND ({domain:String} = '*' OR domain = {domain:String})")
        start = self._start("metrics_1m", "minute", end - hours * HOUR_MS, end, pair_filter,
                            sender=sender, domain=domain)
        bucket = bucket_seconds(end - start)
        pair = {"sender": sender, "domain": domain, "start": start, "end": end}
        columns, rows = self._rows(
            # (aliases apart from the column names: WHERE would read the alias)
            "SELECT seq, action, rate_factor, reason, evidence, "
            "toUnixTimestamp64Milli(event_ts) AS event_ms, "
            "toUnixTimestamp64Milli(decided_at) AS decided_ms, "
            "toUnixTimestamp64Milli(until) AS until_ms "
            "FROM mailflow.throttle_decisions FINAL "
            "WHERE sender = {sender:String} AND domain = {domain:String} "
            "AND event_ts >= fromUnixTimestamp64Milli({since:Int64}) "
            "AND event_ts < fromUnixTimestamp64Milli({end:Int64}) "
            "ORDER BY seq LIMIT 2000",
            since=start - 30 * DAY_MS, **pair)
        renamed = {"event_ms": "event_ts", "decided_ms": "decided_at", "until_ms": "until"}
        decisions = [{renamed.get(c, c): v for c, v in zip(columns, row, strict=True)}
                     for row in rows]
        for d in decisions:
            try:
                d["evidence"] = orjson.loads(d["evidence"]) if d["evidence"] else {}
            except orjson.JSONDecodeError:
                d["evidence"] = {}
        # the decision in force when the span began, then those made in it
        before = [d for d in decisions if d["event_ts"] < start][-1:]
        decisions = before + [d for d in decisions if d["event_ts"] >= start]
        columns, rows = self._rows(
            "SELECT toUnixTimestamp(toStartOfInterval(minute, toIntervalSecond({bucket:UInt32})))"
            # (aliases apart from the column names: `sum(x) AS x` would be summed again)
            " * 1000 AS t, sum(delivered) AS n_delivered, "
            "sum(delivered + bounces + deferred) AS n_attempts, sum(hard_bounces) AS n_hard, "
            "sum(complaints) AS n_complaints, sum(blocks) AS n_blocks, "
            "sum(unsubscribes) AS n_unsubscribes, sum(deferred) AS n_deferred "
            "FROM mailflow.metrics_1m FINAL "
            "WHERE minute >= fromUnixTimestamp64Milli({start:Int64}) "
            f"AND minute < fromUnixTimestamp64Milli({{end:Int64}}) {pair_filter} "
            "GROUP BY t ORDER BY t",
            bucket=bucket, **pair)
        s = _series(columns, rows, ("t", "n_delivered", "n_attempts", "n_hard",
                                    "n_complaints", "n_blocks", "n_unsubscribes",
                                    "n_deferred"))
        signals = {
            "t": s["t"], "delivered": s["delivered"], "attempts": s["attempts"],
            "hard_bounce_rate": _rate(s["hard"], s["attempts"]),
            "complaint_rate": _rate(s["complaints"], s["delivered"]),
            "block_rate": _rate(s["blocks"], s["attempts"]),
            "unsubscribe_rate": _rate(s["unsubscribes"], s["delivered"]),
            "deferral_rate": _rate(s["deferred"], s["attempts"]),
        }
        return {**pair, "bucket_s": bucket, "decisions": decisions, "signals": signals}

    # --- flows --------------------------------------------------------------------------
    def flows(self, params: dict[str, str]) -> dict[str, Any]:
        window = params.get("window", "24h")
        if window not in WINDOWS:
            raise BadRequest(f"window must be one of {', '.join(WINDOWS)}")
        days = _number(params, "days", 7, 1, 90)
        end = self._end(params, "convergence", "as_of")
        start = self._start("convergence", "as_of", end - days * DAY_MS, end,
                            "AND window = {window:String}", window=window)
        bucket = bucket_seconds(end - start)
        columns, rows = self._rows(
            "SELECT flow_id, toUnixTimestamp(toStartOfInterval(as_of, "
            "toIntervalSecond({bucket:UInt32}))) * 1000 AS t, "
            "argMax(entered, as_of) AS entered, argMax(converged, as_of) AS converged, "
            "argMax(convergence_score, as_of) AS convergence_score, "
            "argMax(engagement_depth, as_of) AS engagement_depth, "
            "argMax(engagement_depth_raw, as_of) AS engagement_depth_raw, "
            "argMax(negative_rate, as_of) AS negative_rate, "
            "toUnixTimestamp(max(as_of)) * 1000 AS last_ms "
            "FROM mailflow.convergence FINAL WHERE window = {window:String} "
            "AND as_of >= fromUnixTimestamp64Milli({start:Int64}) "
            "AND as_of < fromUnixTimestamp64Milli({end:Int64}) "
            "GROUP BY flow_id, t ORDER BY flow_id, t LIMIT 200000",
            bucket=bucket, window=window, start=start, end=end)
        names = ("t", "entered", "converged", "convergence_score", "engagement_depth",
                 "engagement_depth_raw", "negative_rate")
        by_flow: dict[str, list[Any]] = {}
        for row in rows:
            by_flow.setdefault(row[0], []).append(row)
        flows = []
        for flow_id, flow_rows in by_flow.items():
            series = _series(columns, flow_rows, names)
            last = dict(zip(columns, flow_rows[-1], strict=True))
            flows.append({
                "flow_id": flow_id, **series,
                "latest": {"as_of": last["last_ms"], **{n: last[n] for n in names[1:]}}})
        return {"window": window, "start": start, "end": end, "bucket_s": bucket,
                "flows": flows, "lift": self._lift(end)}

    def _lift(self, end: int) -> list[dict[str, Any]]:
        """The newest lift row per flow and window within 90 days of `end`."""
        fields = ("treated_n", "control_n", "treated_rate", "control_rate", "abs_lift",
                  "abs_lo95", "abs_hi95", "av_lo95", "av_hi95", "significant", "srm_alarm",
                  "srm_p", "partial")
        columns, rows = self._rows(
            "SELECT flow_id, window_days, toUnixTimestamp64Milli(max(as_of)) AS newest, "
            + ", ".join(f"argMax({f}, as_of) AS {f}" for f in fields)
            + " FROM mailflow.lift FINAL "
            "WHERE as_of >= fromUnixTimestamp64Milli({since:Int64}) "
            "AND as_of < fromUnixTimestamp64Milli({end:Int64}) "
            "GROUP BY flow_id, window_days ORDER BY flow_id, window_days LIMIT 1000",
            since=end - 90 * DAY_MS, end=end + DAY_MS)
        rows = [dict(zip(columns, row, strict=True)) for row in rows]
        for row in rows:
            row["as_of"] = row.pop("newest")
        return rows

    # --- models -------------------------------------------------------------------------
    def models(self, params: dict[str, str]) -> dict[str, Any]:
        hours = _number(params, "hours", 24, 1, MAX_HOURS)
        end = self._end(params, "model_metrics", "minute")
        start = self._start("model_metrics", "minute", end - hours * HOUR_MS, end)
        bucket = bucket_seconds(end - start)
        columns, rows = self._rows(
            "SELECT model, toUnixTimestamp(toStartOfInterval(minute, "
            "toIntervalSecond({bucket:UInt32}))) * 1000 AS t, "
            "argMax(roc_auc, minute) AS roc_auc, argMax(log_loss, minute) AS log_loss, "
            "max(n) AS n FROM mailflow.model_metrics FINAL "
            "WHERE minute >= fromUnixTimestamp64Milli({start:Int64}) "
            "AND minute < fromUnixTimestamp64Milli({end:Int64}) "
            "GROUP BY model, t ORDER BY model, t LIMIT 100000",
            bucket=bucket, start=start, end=end)
        by_model: dict[str, list[Any]] = {}
        for row in rows:
            by_model.setdefault(row[0], []).append(row)
        models = [{"model": name, **_series(columns, model_rows,
                                            ("t", "roc_auc", "log_loss", "n"))}
                  for name, model_rows in by_model.items()]
        columns, rows = self._rows(
            "SELECT toUnixTimestamp64Milli(ts) AS ts_ms, model, event, detail "
            "FROM mailflow.model_events FINAL "
            "WHERE ts >= fromUnixTimestamp64Milli({start:Int64}) "
            "AND ts < fromUnixTimestamp64Milli({end:Int64}) ORDER BY ts LIMIT 500",
            start=start, end=end)
        events = [{"ts": ts, "model": model, "event": event, "detail": detail}
                  for ts, model, event, detail in rows]
        return {"start": start, "end": end, "bucket_s": bucket, "models": models,
                "events": events}

    # --- replies and tracking -----------------------------------------------------------
    def replies(self, params: dict[str, str]) -> dict[str, Any]:
        hours = _number(params, "hours", 24, 1, MAX_HOURS)
        end = self._end(params, "replies", "ts")
        start = self._start("replies", "ts", end - hours * HOUR_MS, end)
        span = {"start": start, "end": end}
        where = ("WHERE ts >= fromUnixTimestamp64Milli({start:Int64}) "
                 "AND ts < fromUnixTimestamp64Milli({end:Int64})")
        _, rows = self._rows(
            f"SELECT queue, count() AS replies, countIf(urgent) AS n_urgent "
            f"FROM mailflow.replies FINAL {where} GROUP BY queue ORDER BY replies DESC "
            "LIMIT 200", **span)
        queues = [{"queue": q, "replies": n, "urgent": u} for q, n, u in rows]
        _, rows = self._rows(
            f"SELECT intent, count() AS replies FROM mailflow.replies FINAL {where} "
            "GROUP BY intent ORDER BY replies DESC LIMIT 200", **span)
        intents = [{"intent": i, "replies": n} for i, n in rows]
        bucket = bucket_seconds(end - start, smallest=3600)
        columns, rows = self._rows(
            "SELECT toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({bucket:UInt32})))"
            f" * 1000 AS t, count() AS n FROM mailflow.replies FINAL {where} "
            "GROUP BY t ORDER BY t", bucket=bucket, **span)
        _, first = self._rows(
            "SELECT count() AS n, quantile(0.5)(latency_s) AS p50, "
            "quantile(0.9)(latency_s) AS p90 FROM mailflow.reply_feedback FINAL "
            f"{where} AND action = 'first_response'", **span)
        total = sum(q["replies"] for q in queues)
        automated = sum(q["replies"] for q in queues if q["queue"] == "")
        n, p50, p90 = first[0] if first else (0, None, None)
        return {**span, "bucket_s": bucket, "total": total, "automated": automated,
                "automation_rate": round(automated / total, 4) if total else None,
                "queues": queues, "intents": intents,
                "first_response": {"n": n, "p50_s": p50, "p90_s": p90} if n else None,
                "t": [r[0] for r in rows], "by_hour": [r[1] for r in rows]}

    def tracking(self, params: dict[str, str]) -> dict[str, Any]:
        hours = _number(params, "hours", 24, 1, MAX_HOURS)
        end = self._end(params, "metrics_1m", "minute")
        start = self._start("metrics_1m", "minute", end - hours * HOUR_MS, end)
        bucket = bucket_seconds(end - start, smallest=600)
        names = ("human_clicks", "bot_clicks", "human_opens", "machine_opens")
        columns, rows = self._rows(
            "SELECT toUnixTimestamp(toStartOfInterval(minute, toIntervalSecond({bucket:UInt32})))"
            " * 1000 AS t, " + ", ".join(f"sum({n}) AS n_{n}" for n in names)
            + " FROM mailflow.metrics_1m FINAL "
            "WHERE minute >= fromUnixTimestamp64Milli({start:Int64}) "
            "AND minute < fromUnixTimestamp64Milli({end:Int64}) GROUP BY t ORDER BY t",
            bucket=bucket, start=start, end=end)
        series = _series(columns, rows, ("t", *(f"n_{n}" for n in names)))
        return {"start": start, "end": end, "bucket_s": bucket, **series,
                "totals": {n: sum(series[n]) for n in names}, "edge": self._edge()}

    def _edge(self) -> dict[str, Any] | None:
        """The tracking edge's own counters (redirects, pixels, refusals by reason), read
        from its `/metrics`; None when no edge is configured or it does not answer."""
        if not self.track_url:
            return None
        try:
            with urllib.request.urlopen(f"{self.track_url}/metrics", timeout=1.0) as resp:
                text = resp.read(1 << 20).decode("utf-8", errors="replace")
        except OSError:
            return None
        return edge_counters(text)


_SAMPLE = re.compile(r'^(mailflow_track_(?:requests|refused)_total)\{(\w+)="([^"]*)"\} (\S+)$')


def edge_counters(metrics: str) -> dict[str, Any]:
    """Requests per endpoint and refusals per reason from `mailflow track`'s /metrics.

    >>> edge_counters('mailflow_track_requests_total{endpoint="click"} 7\\n'
    ...               'mailflow_track_refused_total{reason="bad_signature"} 2\\n')
    {'requests': {'click': 7}, 'refused': {'bad_signature': 2}, 'refused_total': 2}
    """
    requests: dict[str, int] = {}
    refused: dict[str, int] = {}
    for line in metrics.splitlines():
        match = _SAMPLE.match(line.strip())
        if not match:
            continue
        name, _label, value, number = match.groups()
        try:
            count = int(float(number))
        except ValueError:
            continue
        (requests if name.startswith("mailflow_track_requests") else refused)[value] = count
    return {"requests": requests, "refused": refused, "refused_total": sum(refused.values())}


# --- the session cookie and the static page ----------------------------------------------

COOKIE = "mailflow_token"
COOKIE_MAX_AGE_S = 12 * 3600
UI_DIR = Path(__file__).resolve().parent / "ui"
#: what the page may load and where it may connect: only this server (no CDN, no inline
#: script); uPlot sets styles through the DOM, which `style-src 'self'` allows
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
          ".txt": "text/plain; charset=utf-8", "": "text/plain; charset=utf-8"}
_ASSET = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,80}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,80})?$")


def session_value(token: str) -> str:
    """What the cookie holds for a token: a keyed digest, never the token itself, so a
    cookie read off a disk is no bearer token, and rotating the tokens ends every session.

    >>> session_value("s3cret") == session_value("s3cret") != session_value("other")
    True
    """
    return hmac.new(token.encode(), b"mailflow console session v1", hashlib.sha256).hexdigest()


def cookie_ok(cookie_header: str | None, tokens: list[str]) -> bool:
    """Does a `Cookie` header carry the session of one of `tokens`? Compared in constant
    time; a header the cookie parser cannot read is simply no match.

    >>> cookie_ok(f"a=b; {COOKIE}={session_value('t')}", ["x", "t"]), cookie_ok("x", ["t"])
    (True, False)
    """
    if not cookie_header:
        return False
    jar = http.cookies.SimpleCookie()
    try:
        jar.load(cookie_header)
    except http.cookies.CookieError:
        return False
    morsel = jar.get(COOKIE)
    if morsel is None:
        return False
    return matches_any(morsel.value.encode("ascii", errors="replace"),
                       (session_value(token).encode() for token in tokens))


def set_cookie(token: str | None, secure: bool) -> str:
    """The `Set-Cookie` value for a session (or, with None, one that ends it)."""
    value, age = (session_value(token), COOKIE_MAX_AGE_S) if token else ("", 0)
    return (f"{COOKIE}={value}; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict"
            + ("; Secure" if secure else ""))


def asset(path: str) -> tuple[bytes, str] | None:
    """A file of the page (`/ui/...`) and its content type, None if there is none. Only
    names of letters, digits and `._-` one folder deep: nothing outside `mailflow/ui`.

    >>> asset("/ui/../../etc/passwd"), asset("/ui/.hidden"), asset("/ui/a/b/c.js")
    (None, None, None)
    """
    name = path[len("/ui/"):] or "index.html"
    if not _ASSET.match(name) or ".." in name:
        return None
    file = UI_DIR / name
    if not file.is_file():
        return None
    return file.read_bytes(), _TYPES.get(file.suffix, "application/octet-stream")
