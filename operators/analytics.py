"""Engagement analytics over the ordered event stream: one way in, `apply(batch)`.

Composes the per-message tracker (machine opens, bot clicks, response
latency), multi-touch attribution, the per-minute counters and the rolling
convergence book. Events must arrive in event-time order (the flow's
event-time gate provides it); everything here is driven by event time only.
"""

from __future__ import annotations

from typing import NamedTuple

from operators.attribution import AttributionBook, Credit, Touch
from operators.bounces import BounceVerdict
from operators.convergence import (
    CONVERSION,
    DELIVERY,
    HUMAN_INTERACTION,
    LATENCY,
    MACHINE_INTERACTION,
    MINUTE_MS,
    NEGATIVE,
    WINDOWS,
    ConvergenceBook,
    ConvergenceRow,
    FlowFact,
)
from operators.engagement import Interaction, MessageTracker
from operators.metrics import MinuteEvent, MinuteMetrics, MinuteRow
from schemas.events import Event

_INTERACTIONS = frozenset({"open", "click"})


class Enriched(NamedTuple):
    event: Event
    bounce: BounceVerdict | None
    interaction: Interaction
    attributed_flows: tuple[str, ...]


class AnalyticsBatch(NamedTuple):
    events: list[Enriched]
    credits: list[tuple[Event, Credit]]
    minutes: list[MinuteRow]
    convergence: list[ConvergenceRow]


class EngagementAnalytics:
    def __init__(self, attribution_window_s: int = 7 * 86_400, half_life_s: int = 86_400,
                 allowed_lateness_s: int = 3600, windows: dict[str, int] | None = None):
        self.tracker = MessageTracker(ttl_s=max(attribution_window_s, 86_400))
        self.attribution = AttributionBook(window_s=attribution_window_s,
                                           half_life_s=half_life_s)
        self.minutes = MinuteMetrics(allowed_lateness_s)
        self.convergence = ConvergenceBook(windows or WINDOWS)
        self._expired_minute = -1

    @property
    def late(self) -> int:
        """Events later than the allowed lateness (left out of `metrics_1m`)."""
        return self.minutes.late

    def apply(self, items: list[tuple[Event, BounceVerdict | None]]) -> AnalyticsBatch:
        out = AnalyticsBatch([], [], [], [])
        for ev, bounce in items:
            self._one(ev, bounce, out)
        return out

    def flush(self) -> AnalyticsBatch:
        return AnalyticsBatch([], [], self.minutes.flush(), self.convergence.flush())

    def _one(self, ev: Event, bounce: BounceVerdict | None, out: AnalyticsBatch) -> None:
        interaction = self.tracker.apply(ev)
        etype, flow = ev.type, ev.flow_id
        facts: list[FlowFact] = []
        attributed: tuple[str, ...] = ()
        if etype == "delivered":
            self.attribution.touch(ev.sender, ev.recipient_hash,
                                   Touch(ev.ts_ms, ev.message_id, ev.campaign_id, flow))
            if flow:
                facts.append(FlowFact(ev.ts_ms, flow, ev.recipient_hash, DELIVERY))
        elif etype == "conversion":
            attributed = tuple(self.attribution.flows_touched(ev.sender, ev.recipient_hash,
                                                              ev.ts_ms))
            facts += [FlowFact(ev.ts_ms, f, ev.recipient_hash, CONVERSION) for f in attributed]
            out.credits.extend((ev, c) for c in self.attribution.credits(
                ev.sender, ev.recipient_hash, ev.ts_ms))
            if flow and interaction.latency_s > 0:
                facts.append(FlowFact(ev.ts_ms, flow, ev.recipient_hash, LATENCY,
                                      interaction.latency_s))
        elif flow:
            if etype in _INTERACTIONS:
                kind = HUMAN_INTERACTION if interaction.is_human else MACHINE_INTERACTION
                facts.append(FlowFact(ev.ts_ms, flow, ev.recipient_hash, kind,
                                      interaction.latency_s))
            elif etype == "reply":
                facts.append(FlowFact(ev.ts_ms, flow, ev.recipient_hash, HUMAN_INTERACTION,
                                      interaction.latency_s))
            elif etype in ("complaint", "unsubscribe") or (
                    etype == "bounce" and bounce is not None and bounce.bounce_class == "hard"):
                facts.append(FlowFact(ev.ts_ms, flow, ev.recipient_hash, NEGATIVE))
        # The book reports minute boundaries on any event, so every event ticks it.
        out.convergence.extend(self.convergence.observe(
            facts[0] if facts else FlowFact(ev.ts_ms, "", "", DELIVERY)))
        for fact in facts[1:]:
            out.convergence.extend(self.convergence.observe(fact))
        out.minutes.extend(self.minutes.observe(MinuteEvent(
            ev.ts_ms, ev.sender, ev.domain, ev.campaign_id, flow, etype, interaction.is_human,
            bounce.bounce_class if bounce is not None else "", ev.value, interaction.latency_s)))
        out.events.append(Enriched(ev, bounce, interaction, attributed))
        minute = ev.ts_ms // MINUTE_MS
        if minute >= self._expired_minute + 10:  # every 10 minutes: forget what no window reaches
            self._expired_minute = minute
            self.tracker.expire(ev.ts_ms)
            self.attribution.expire(ev.ts_ms)
