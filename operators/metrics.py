"""Per-minute counters by sender × provider × campaign × flow (`metrics_1m`).

A minute's rows are emitted when the stream moves past it; an event for a
minute already emitted but within `allowed_lateness_s` updates that minute and
emits its row again with a higher `version` (the table keeps the latest
version), so late rows update their window instead of being dropped. Events
later than that are counted in `late`, and left out of these counters (they
are still in `mailflow.events`).

>>> m = MinuteMetrics(allowed_lateness_s=600)
>>> m.observe(MinuteEvent(5_000, "s", "gmail.com", "c1", "", "open", False, "", 0.0, 0.0))
[]
>>> rows = m.observe(MinuteEvent(65_000, "s", "gmail.com", "c1", "", "open", True, "", 0.0,
...                              42.0))
>>> [(r.minute_ms, r.opens, r.human_opens, r.machine_opens, r.version) for r in rows]
[(0, 1, 0, 1, 1)]
"""

from __future__ import annotations

from typing import NamedTuple

from operators.convergence import MINUTE_MS, quantile_exact

_TYPE_COUNTERS = ("sent", "delivered", "deferred", "bounce", "dropped", "open", "click",
                  "reply", "unsubscribe", "complaint", "conversion")
_INDEX = {t: i for i, t in enumerate(_TYPE_COUNTERS)}
# extra counters after the per-type ones
(HUMAN_OPENS, MACHINE_OPENS, HUMAN_CLICKS, BOT_CLICKS, HARD, SOFT, BLOCK, RATE_LIMIT,
 EVENTS) = range(len(_TYPE_COUNTERS), len(_TYPE_COUNTERS) + 9)
_WIDTH = EVENTS + 1


class MinuteEvent(NamedTuple):
    ts_ms: int
    sender: str
    domain: str
    campaign_id: str
    flow_id: str
    type: str
    is_human: bool
    bounce_class: str
    value: float
    latency_s: float


class MinuteRow(NamedTuple):
    minute_ms: int
    sender: str
    domain: str
    campaign_id: str
    flow_id: str
    sent: int
    delivered: int
    deferred: int
    bounces: int
    dropped: int
    opens: int
    clicks: int
    replies: int
    unsubscribes: int
    complaints: int
    conversions: int
    human_opens: int
    machine_opens: int
    human_clicks: int
    bot_clicks: int
    hard_bounces: int
    soft_bounces: int
    blocks: int
    rate_limited: int
    revenue: float
    latency_n: int
    latency_p50_s: float
    latency_p90_s: float
    version: int  # events counted so far: the latest row of a minute has the highest


class _Group:
    __slots__ = ("counts", "revenue", "latencies")

    def __init__(self) -> None:
        self.counts = [0] * _WIDTH
        self.revenue = 0.0
        self.latencies: list[float] = []


_BOUNCE_COUNTERS = {"hard": HARD, "soft": SOFT, "block": BLOCK, "rate_limit": RATE_LIMIT}


class MinuteMetrics:
    def __init__(self, allowed_lateness_s: int = 3600):
        self.allowed_lateness_ms = allowed_lateness_s * 1000
        # minute -> (sender, domain, campaign, flow) -> counters
        self.groups: dict[int, dict[tuple, _Group]] = {}
        self.minute = -1  # newest minute seen
        self.emitted_through = -1  # minutes <= this have been emitted at least once
        self.late = 0

    def observe(self, ev: MinuteEvent) -> list[MinuteRow]:
        minute = ev.ts_ms // MINUTE_MS
        rows: list[MinuteRow] = []
        if minute > self.minute:
            rows = self._close_through(minute - 1)
            self.minute = minute
        if (self.minute - minute) * MINUTE_MS > self.allowed_lateness_ms:
            self.late += 1
            return rows
        key = (minute, ev.sender, ev.domain, ev.campaign_id, ev.flow_id)
        groups = self.groups.get(minute)
        if groups is None:
            groups = self.groups[minute] = {}
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        c = group.counts
        c[EVENTS] += 1
        i = _INDEX.get(ev.type)
        if i is not None:
            c[i] += 1
        if ev.type == "open":
            c[HUMAN_OPENS if ev.is_human else MACHINE_OPENS] += 1
        elif ev.type == "click":
            c[HUMAN_CLICKS if ev.is_human else BOT_CLICKS] += 1
        elif ev.type in ("bounce", "deferred"):
            j = _BOUNCE_COUNTERS.get(ev.bounce_class)
            if j is not None and (ev.type == "bounce" or j in (BLOCK, RATE_LIMIT)):
                c[j] += 1
        elif ev.type == "conversion":
            group.revenue += ev.value
        if ev.latency_s > 0:
            group.latencies.append(ev.latency_s)
        if minute <= self.emitted_through:  # a late event: re-emit its minute's row
            rows.append(self._row(key, group))
        return rows

    def close_before(self, minute: int) -> list[MinuteRow]:
        """The stream has passed into `minute`: emit the minutes before it not yet emitted.

        Lateness is still judged against the newest event counted, not against this."""
        if minute - 1 <= self.emitted_through:
            return []
        rows = [self._row(key, g) for m in sorted(self.groups)
                if self.emitted_through < m < minute for key, g in sorted(self.groups[m].items())]
        self.emitted_through = minute - 1
        return rows

    def flush(self) -> list[MinuteRow]:
        """End of input: every minute not yet emitted."""
        return self._close_through(self.minute)

    def _close_through(self, minute: int) -> list[MinuteRow]:
        """Emit minutes up to `minute` not yet emitted; forget those beyond the lateness."""
        rows = [self._row(key, g) for m in sorted(self.groups)
                if self.emitted_through < m <= minute
                for key, g in sorted(self.groups[m].items())]
        self.emitted_through = max(self.emitted_through, minute)
        horizon = minute - self.allowed_lateness_ms // MINUTE_MS
        for m in [m for m in self.groups if m < horizon]:
            del self.groups[m]
        return rows

    @staticmethod
    def _row(key: tuple, g: _Group) -> MinuteRow:
        c = g.counts
        lat = sorted(g.latencies)
        return MinuteRow(
            key[0] * MINUTE_MS, key[1], key[2], key[3], key[4],
            *c[:len(_TYPE_COUNTERS)], c[HUMAN_OPENS], c[MACHINE_OPENS], c[HUMAN_CLICKS],
            c[BOT_CLICKS], c[HARD], c[SOFT], c[BLOCK], c[RATE_LIMIT], round(g.revenue, 6),
            len(lat), quantile_exact(lat, 0.5), quantile_exact(lat, 0.9), c[EVENTS])
