"""Engagement analytics and learning over the ordered event stream: `apply(batch)`.

Composes the per-message tracker (machine opens, bot clicks, response
latency), multi-touch attribution, the per-minute counters, the rolling
convergence book, the online models with delayed labels, send-time
optimisation, the variant bandit and personas. Events must arrive in
event-time order (the flow's event-time gate provides it); everything here is
driven by event time only.
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
from operators.learning import Graded, Learner, ModelEvent, ModelMetricRow, Resolved, Score
from operators.metrics import MinuteEvent, MinuteMetrics, MinuteRow
from operators.model_quality import ModelQuality
from operators.personas import PersonaBook, Profile
from operators.send_time import SendTime, SendTimeBook
from operators.variants import Allocation, VariantBandit
from schemas.events import Event

_INTERACTIONS = frozenset({"open", "click"})


def message_key_for(message_id: str, recipient_hash: str) -> str:
    """Per-recipient identity of a message (ids may be shared by one send's recipients)."""
    return message_id + recipient_suffix(recipient_hash) if message_id else ""


def recipient_suffix(recipient_hash: str) -> str:
    """How every per-recipient message key of one recipient ends (what erasure looks for).

    >>> message_key_for("<m1>", "0123456789abcdef").endswith(recipient_suffix("0123456789abcdef"))
    True
    """
    return "|" + recipient_hash[:12]


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
    scores: list[Score]
    send_times: list[SendTime]
    allocations: list[Allocation]
    model_metrics: list[ModelMetricRow]
    model_events: list[ModelEvent]
    profiles: list[Profile]


def empty_batch() -> AnalyticsBatch:
    return AnalyticsBatch([], [], [], [], [], [], [], [], [], [])


class EngagementAnalytics:
    """Every recipient-, message- and flow-scoped book of the analytics, in one place.

    `forget(recipient_hash, up_to_ms)` erases one person (GDPR Art. 17) from every
    book, and drops their events stamped at or before `up_to_ms` that arrive later
    (still in flight when the erasure was asked for) until the stream's event time
    is `allowed_lateness_s` past `up_to_ms`. Anonymous sums (per-minute counters,
    priors, model weights, campaign rates) keep what they counted.
    """

    # class defaults: snapshots taken before erasure existed still load
    _erased: dict[str, int] | None = None  # recipient hash -> erased up to (event ms)
    _guard_ms = 3_600_000
    erased_dropped = 0  # events refused because their recipient was erased

    def __init__(self, attribution_window_s: int = 7 * 86_400, half_life_s: int = 86_400,
                 allowed_lateness_s: int = 3600, windows: dict[str, int] | None = None,
                 label_window_s: int = 86_400, reset_on_drift: bool = False):
        # A delivery is remembered as long as anything can still use it: attribution
        # credit or a label (state is bounded by these two settings).
        self.tracker = MessageTracker(ttl_s=max(attribution_window_s, label_window_s))
        self.attribution = AttributionBook(window_s=attribution_window_s,
                                           half_life_s=half_life_s)
        self.minutes = MinuteMetrics(allowed_lateness_s)
        self.convergence = ConvergenceBook(windows or WINDOWS)
        self.learner = Learner(label_window_s=label_window_s, reset_on_drift=reset_on_drift)
        self.quality = ModelQuality()
        self.send_times = SendTimeBook()
        self.bandit = VariantBandit()
        self.personas = PersonaBook()
        self._expired_minute = -1
        self._last_ts = 0
        self._guard_ms = allowed_lateness_s * 1000

    @property
    def late(self) -> int:
        """Events later than the allowed lateness (left out of `metrics_1m`)."""
        return self.minutes.late

    def apply(self, items: list[tuple[Event, BounceVerdict | None]],
              out: AnalyticsBatch | None = None) -> AnalyticsBatch:
        """Events in event-time order; what they produced (added to `out` if given)."""
        out = empty_batch() if out is None else out
        erased = self._erased
        for ev, bounce in items:
            if erased and ev.ts_ms <= erased.get(ev.recipient_hash, -1):
                self.erased_dropped += 1  # in flight when its recipient was erased
                continue
            self._one(ev, bounce, out)
        return out

    def forget(self, recipient_hash: str, up_to_ms: int) -> dict[str, int]:
        """Erase one recipient from every book; what went, per book.

        >>> from schemas.events import Event
        >>> def ev(kind, ts_ms, recipient="r1", message_id="m1"):
        ...     return (Event("", ts_ms, kind, "s", recipient, "gmail.com", "gmail.com",
        ...                   message_id, "c", "welcome", "", "Mozilla/5.0 Safari/604.1",
        ...                   "84.1.2.3", "", 0, "", "", "", "", 0.0, "", {}, "", 0, 0), None)
        >>> a = EngagementAnalytics()
        >>> out = a.apply([ev("delivered", 60_000), ev("delivered", 61_000, "r2", "m2"),
        ...                ev("click", 600_000)])
        >>> report = a.forget("r1", up_to_ms=700_000)
        >>> report["tracker"], report["learner"], report["send_times"], sum(report.values())
        (1, 2, 1, 7)
        >>> len(a.apply([ev("open", 650_000)]).events), a.erased_dropped   # in flight: dropped
        (0, 1)
        >>> len(a.apply([ev("open", 800_000)]).events)   # after the erasure: new data
        1
        """
        messages = self.tracker.forget(recipient_suffix(recipient_hash))
        report = {
            "tracker": len(messages),
            "attribution": self.attribution.forget(recipient_hash),
            "convergence": self.convergence.forget(recipient_hash),
            "learner": self.learner.forget(recipient_hash, messages),
            "send_times": self.send_times.forget(recipient_hash),
            "personas": self.personas.forget(recipient_hash),
        }
        erased = dict(self._erased or {})
        erased[recipient_hash] = max(up_to_ms, erased.get(recipient_hash, up_to_ms))
        self._erased = erased
        return report

    def _expire_erasures(self, ts_ms: int) -> None:
        """Stop guarding erasures the stream's event time is well past (lateness)."""
        if self._erased:
            horizon = ts_ms - self._guard_ms
            self._erased = {h: up_to for h, up_to in self._erased.items() if up_to >= horizon}

    def flush(self) -> AnalyticsBatch:
        out = empty_batch()
        out.minutes.extend(self.minutes.flush())
        out.convergence.extend(self.convergence.flush())
        out.model_metrics.extend(self.quality.flush(self._last_ts))
        return out

    def _learn(self, ev: Event, mkey: str, interaction: Interaction,
               bounce: BounceVerdict | None, credits: list[Credit], out: AnalyticsBatch
               ) -> None:
        """Online models, send times, bandit and personas for one event."""
        learner, etype, r = self.learner, ev.type, ev.recipient_hash
        resolved: list[Resolved] = []
        events: list[ModelEvent] = []
        graded: list[Graded] = []
        genuine = False
        if etype == "sent":
            learner.on_sent(mkey, ev.domain, r, ev.sender, ev.ts_ms)
        elif etype == "delivered":
            score, graded = learner.on_delivered(mkey, ev.sender, ev.domain, r,
                                                 ev.campaign_id, ev.variant, ev.ts_ms)
            score = score._replace(message_id=ev.message_id)
            out.scores.append(score)
            self.bandit.seen(ev.campaign_id, ev.variant)
            profile = self.personas.observe(r, score.score, score.conversion, ev.ts_ms)
            if profile is not None:
                out.profiles.append(profile)
        elif etype == "bounce":
            events, graded = learner.on_bounce(mkey, bounce is not None
                                               and bounce.bounce_class == "hard", ev.ts_ms)
        elif etype == "open":
            learner.on_open(r, interaction.is_human, ev.ts_ms)
            genuine = interaction.is_human
        elif etype in ("click", "reply"):
            if interaction.is_human:
                got, events = learner.on_engagement(mkey, r, ev.ts_ms)
                resolved += got
                genuine = True
        elif etype == "conversion":
            last = next((c.touch.message_id for c in credits if c.model == "last_touch"), "")
            got, events = learner.on_conversion(message_key_for(last, r) if last else "", r,
                                                ev.ts_ms)
            resolved += got
            genuine = True
        elif etype in ("unsubscribe", "complaint"):
            got, events = learner.on_unsubscribe(mkey, ev.ts_ms)
        if genuine:  # machine opens never reach the send-time book
            self.send_times.evaluate(r, ev.domain, ev.ts_ms)
            update = self.send_times.engage(r, ev.domain, ev.ts_ms)
            if update is not None:
                out.send_times.append(update)
        expired, more_events, more_graded = learner.tick(ev.ts_ms)
        resolved += expired
        events += more_events
        graded += more_graded
        if graded:  # model quality rows follow the labels (one per model per minute)
            out.model_metrics.extend(self.quality.add(graded))
        out.model_events.extend(events)
        for res in resolved:
            allocation = self.bandit.reward(res.campaign, res.variant, res.engaged, res.ts_ms)
            if allocation is not None:
                out.allocations.append(allocation)

    def _one(self, ev: Event, bounce: BounceVerdict | None, out: AnalyticsBatch) -> None:
        # A provider's message id can be shared by all recipients of one send (SendGrid's
        # X-Message-Id across personalizations): per-message state is per recipient too.
        mkey = message_key_for(ev.message_id, ev.recipient_hash)
        interaction = self.tracker.apply(ev._replace(message_id=mkey) if mkey else ev)
        etype, flow = ev.type, ev.flow_id
        facts: list[FlowFact] = []
        attributed: tuple[str, ...] = ()
        credits: list[Credit] = []
        if etype == "delivered":
            self.attribution.touch(ev.sender, ev.recipient_hash,
                                   Touch(ev.ts_ms, ev.message_id, ev.campaign_id, flow))
            if flow:
                facts.append(FlowFact(ev.ts_ms, flow, ev.recipient_hash, DELIVERY))
        elif etype == "conversion":
            attributed = tuple(self.attribution.flows_touched(ev.sender, ev.recipient_hash,
                                                              ev.ts_ms))
            facts += [FlowFact(ev.ts_ms, f, ev.recipient_hash, CONVERSION) for f in attributed]
            credits = self.attribution.credits(ev.sender, ev.recipient_hash, ev.ts_ms)
            out.credits.extend((ev, c) for c in credits)
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
        self._learn(ev, mkey, interaction, bounce, credits, out)
        self._last_ts = max(self._last_ts, ev.ts_ms)
        minute = ev.ts_ms // MINUTE_MS
        if minute >= self._expired_minute + 10:  # every 10 minutes: forget what no window reaches
            self._expired_minute = minute
            self.tracker.expire(ev.ts_ms)
            self.attribution.expire(ev.ts_ms)
            self._expire_erasures(ev.ts_ms)
