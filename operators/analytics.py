"""Engagement analytics and learning over the ordered event stream, in two halves.

`RecipientAnalytics` holds everything scoped to a recipient: the per-message
tracker (machine opens, bot clicks, response latency), multi-touch
attribution, the recipient histories behind the models' features, send times.
Its state splits by recipient into shards (a stable hash of the recipient),
each fed its recipients' events in event-time order.

`FlowAggregates` holds what sums over recipients: the per-minute counters
(`metrics_1m`), the rolling convergence book, the online models with their
pending labels and quality, and the variant bandit. A shard hands it *facts*
(`MinuteEvent`, `FlowFact`, the models' `Sent`/`Delivered`/`Labelled`/
`Bounced`, and erasures); fed the facts of every shard in one event-time order,
it writes exactly what one unsharded book would, and the models learn from
every recipient however many shards there are.

Personas (`PersonaBook`) fold each delivery's scores per recipient; the scores
come out of the aggregates as `Scored` items for the recipient's shard.

`EngagementAnalytics` is all of it in one process, one after the other: what
tests and benchmarks use. Everything here is driven by event time only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from operators.attribution import AttributionBook, Credit, Touch
from operators.bounces import BounceVerdict, suppression_reason
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
from operators.event import Event
from operators.features import HistoryBook
from operators.forecast import (
    CohortForecast,
    CohortOutcome,
    FlowAlert,
    ForecastQuality,
    ForecastRow,
)
from operators.hazards import HOUR_MS
from operators.journeys import JourneyBook, JourneyFact
from operators.learning import (
    CONVERTED,
    ENGAGED,
    UNSUBSCRIBED,
    Bounced,
    Delivered,
    ForgetMessages,
    Labelled,
    Learner,
    ModelEvent,
    ModelMetricRow,
    Resolved,
    Score,
    Sent,
    message_key,
)
from operators.lift import LiftAssigned, LiftBook, LiftOutcome, LiftRow, LiftShares, LiftUnits
from operators.metrics import MinuteEvent, MinuteMetrics, MinuteRow
from operators.model_quality import ModelQuality
from operators.personas import PersonaBook, Profile, Scored
from operators.propensity import Move, PropensityBook, PropensityRow
from operators.reply_desk import (
    FeedbackFact,
    FeedbackRow,
    ReplyDesk,
    ReplyFact,
    ReplyRead,
    ReplySuppression,
    Route,
    RoutingPolicy,
    Suppressed,
)
from operators.send_time import SendTime, SendTimeBook
from operators.variants import Allocation, VariantBandit

_INTERACTIONS = frozenset({"open", "click"})
#: What control groups hear of (besides holdouts): assignments and outcomes.
_LIFT_TYPES = frozenset({"sent", "delivered", "conversion", "unsubscribe", "complaint", "click"})
_HUMAN = Interaction(True, "", 0.0)


def _attr(attrs: dict, name: str) -> str:
    value = attrs.get(name) if attrs else None
    return value if type(value) is str else ""
#: Replies that are a genuine engagement (rules' intent, read in the parse step); a refusal
#: or an out-of-office is not one, an unsubscribe request or a complaint is negative.
ENGAGING_REPLIES = frozenset({"interested", "support_question", "other"})
_NEGATIVE_REPLIES = frozenset({"unsubscribe_request", "complaint"})


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


class ForgetRecipient(NamedTuple):
    """An erasure, for the books that remember recipients (convergence membership)."""

    ts_ms: int
    recipient_hash: str


#: What a shard hands the aggregates, and the key each is aggregated under.
Fact = (MinuteEvent | FlowFact | Sent | Delivered | Labelled | Bounced | ForgetMessages
        | ForgetRecipient | JourneyFact | ReplyFact | FeedbackFact | Suppressed | LiftAssigned
        | LiftOutcome)
#: The aggregate of every model fact: the models see all recipients, in one order.
MODELS = "models"
_MODEL_FACTS = frozenset({Sent, Delivered, Labelled, Bounced, ForgetMessages, JourneyFact,
                          ReplyFact, FeedbackFact, Suppressed})


#: Facts a timer made, stamped with when it was due (not when it was noticed).
TIMED_FACTS = frozenset({JourneyFact, LiftOutcome, LiftAssigned})


def fact_key(fact: Fact) -> str:
    """The aggregate a fact belongs to: sender (metrics), flow, the models; "" for all."""
    kind = type(fact)
    if kind is MinuteEvent:
        return "m:" + fact.sender
    if kind is FlowFact:
        return "f:" + fact.flow_id
    if kind in _MODEL_FACTS:
        return MODELS
    if kind is LiftAssigned or kind is LiftOutcome:
        return "l:" + fact.scope + "|" + fact.key
    return ""


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
    facts: list[Fact]  # for the aggregates (a shard's output; emptied by EngagementAnalytics)
    personas: list[Scored | ForgetRecipient]  # for the recipients' persona books
    propensities: list[PropensityRow]  # flow_propensities (and the topic, when published)
    forecasts: list[ForecastRow]  # convergence_forecast
    cohorts: list[CohortOutcome]  # cohort_outcomes
    flow_alerts: list[FlowAlert]
    forecast_quality: list[ForecastQuality]
    routes: list[Route]  # mailflow.routes and the replies table
    reply_suppressions: list[ReplySuppression]
    feedback: list[FeedbackRow]
    erased_routes: list[str]  # reply ids of an erased person: tombstones on mailflow.routes
    lift: list[LiftRow]  # lift and lift_segments


def empty_batch() -> AnalyticsBatch:
    return AnalyticsBatch(*([] for _ in AnalyticsBatch._fields))


class FlowAggregates:
    """Sums over recipients: `metrics_1m`, convergence, the models and their quality,
    variant splits.

    Facts must come in event-time order (ties in a fixed order) for the rows to
    be the same however the recipients were sharded.

    >>> agg = FlowAggregates()
    >>> out = empty_batch()
    >>> agg.apply([FlowFact(0, "welcome", "r1", DELIVERY),
    ...            FlowFact(61_000, "welcome", "r2", DELIVERY)], out)
    >>> [(r.window, r.as_of_ms, r.entered) for r in out.convergence if r.window == "1h"]
    [('1h', 60000, 1)]
    """

    _advanced_minute = -1  # the minute of the last advance (class default: old snapshots)
    desk: ReplyDesk | None = None  # made at the first reply (only the models' merge has one)
    _desk_expired_hour = -1
    #: How a desk is made: `configure_replies` (the policy, and the starting text model).
    _routing: RoutingPolicy | None = None
    _reply_model: Callable[[], Any] | None = None
    lift: LiftBook | None = None  # class default: snapshots from before control groups

    def __init__(self, allowed_lateness_s: int = 3600, windows: dict[str, int] | None = None,
                 label_window_s: int = 86_400, reset_on_drift: bool = False):
        self.minutes = MinuteMetrics(allowed_lateness_s)
        self.convergence = ConvergenceBook(windows or WINDOWS)
        self.learner = Learner(label_window_s=label_window_s, reset_on_drift=reset_on_drift)
        self.propensity = PropensityBook()
        self.forecast = CohortForecast()
        self.quality = ModelQuality()
        self.bandit = VariantBandit()
        self.lift = LiftBook()
        self._last_ts = 0
        self._advanced_minute = -1

    @property
    def late(self) -> int:
        return self.minutes.late

    def configure(self, allowed_lateness_s: int, label_window_s: int = 86_400,
                  reset_on_drift: bool = False) -> None:
        """Settings after a restart apply to the state learned before it."""
        self.minutes.allowed_lateness_ms = allowed_lateness_s * 1000
        self.learner.label_window_ms = label_window_s * 1000
        for task in (*self.learner.tasks.values(), self.learner.bounce):
            task.reset_on_drift = reset_on_drift

    def configure_flows(self, propensity_step: float, stop_mailing_below: float,
                        flow_window_s: int = 7 * 86_400, alert_margin: float = 0.2) -> None:
        """Settings of the convergence prediction (after a restart too)."""
        self.propensity.configure(propensity_step, stop_mailing_below, flow_window_s)
        self.forecast.configure(window_days=max(1, -(-flow_window_s // 86_400)),
                                alert_margin=alert_margin)

    def configure_lift(self, shares: LiftShares, goal: str = "") -> None:
        """Control groups (after a restart too): the configured split the sample-ratio
        test expects, and the goal the rows name."""
        self._lift().configure(shares, goal)

    def _lift(self) -> LiftBook:
        if self.lift is None:
            self.lift = LiftBook()
        return self.lift

    def configure_replies(self, policy: RoutingPolicy,
                          model: Callable[[], Any] | None = None) -> None:
        """Reply routing (after a restart too): the policy, and what makes the starting
        text model when the first reply comes (the desk's learnt model is kept)."""
        self._routing, self._reply_model = policy, model
        if self.desk is not None:
            self.desk.configure(policy)

    def _desk(self) -> ReplyDesk:
        desk = self.desk
        if desk is None:
            make = self._reply_model
            desk = self.desk = ReplyDesk(self._routing, make() if make is not None else None)
        return desk

    def _reply(self, fact: ReplyFact, out: AnalyticsBatch) -> None:
        desk = self._desk()
        route, suppressions = desk.on_reply(fact)
        if route is not None:
            out.routes.append(route)
            out.reply_suppressions.extend(suppressions)
            for early in desk.early_feedback(fact.reply_id):
                out.feedback.extend(desk.on_feedback(early))

    def _move(self, move: Move, ts_ms: int) -> None:
        """A propensity changed: the cohort forecast follows."""
        forecast, kind = self.forecast, move.kind
        if move.count != 1:
            forecast.rescore_many(move.flow_id, move.cohort_day, move.old, move.new,
                                  move.count, ts_ms)
        elif move.old is None:
            forecast.enter(move.flow_id, move.cohort_day, move.new, ts_ms)
        elif kind == "goal":
            forecast.reach(move.flow_id, move.cohort_day, move.old, ts_ms)
        elif kind in ("stopped", "expired", "erased"):
            forecast.drop(move.flow_id, move.cohort_day, move.old, ts_ms)
        else:
            forecast.rescore(move.flow_id, move.cohort_day, move.old, move.new, ts_ms)

    def apply(self, facts: list[Fact], out: AnalyticsBatch) -> None:
        learner = self.learner
        for fact in facts:
            kind = type(fact)
            if kind is MinuteEvent:
                out.minutes.extend(self.minutes.observe(fact))
            elif kind is FlowFact:
                out.convergence.extend(self.convergence.observe(fact))
            elif kind is Delivered:
                score, graded = learner.on_delivered(fact)
                out.scores.append(score)
                out.personas.append(Scored(fact.recipient_hash, score.score, score.conversion,
                                           fact.ts_ms))
                self.bandit.seen(fact.campaign, fact.variant)
                if graded:
                    out.model_metrics.extend(self.quality.add(graded))
            elif kind is Sent:
                learner.on_sent(fact)
            elif kind is Labelled:
                learner.on_label(fact)
            elif kind is Bounced:
                events, graded = learner.on_bounce(fact)
                out.model_events.extend(events)
                out.model_metrics.extend(self.quality.add(graded))
            elif kind is JourneyFact:
                rows, graded, moves = self.propensity.observe(
                    fact, learner.scores_of(fact.message_key) if fact.message_key else None)
                out.propensities.extend(rows)
                for move in moves:
                    self._move(move, fact.ts_ms)
                if graded:
                    out.model_metrics.extend(self.quality.add(graded))
            elif kind is ReplyFact:
                self._reply(fact, out)
            elif kind is FeedbackFact:
                out.feedback.extend(self._desk().on_feedback(fact))
            elif kind is Suppressed:
                if self.desk is not None:
                    out.reply_suppressions.extend(self.desk.on_suppressed(fact))
            elif kind is ForgetMessages:
                if self.desk is not None:
                    out.erased_routes.extend(self.desk.forget(fact.recipient_hash))
                learner.forget(fact.keys)
                out.personas.append(ForgetRecipient(fact.ts_ms, fact.recipient_hash))
                for move in self.propensity.forget(fact.recipient_hash, fact.ts_ms):
                    self._move(move, fact.ts_ms)
            elif kind is ForgetRecipient:
                self.convergence.forget(fact.recipient_hash)
            elif kind is LiftAssigned or kind is LiftOutcome:
                self._lift().observe(fact)

    def advance(self, ts_ms: int, out: AnalyticsBatch) -> None:
        """Event time reached `ts_ms` (every fact before it has been applied): report the
        minutes it closes, and the labels whose window closed."""
        if ts_ms > self._last_ts:
            self._last_ts = ts_ms
        # The books' rows and the forecasts' hours move by whole minutes (and facts are
        # stamped no later than the advance that follows them): a second advance within a
        # minute finds nothing there. The labels are checked every time (a late delivery
        # is filed under its own, earlier minute).
        minute = ts_ms // MINUTE_MS
        new_minute = minute != self._advanced_minute
        if self.lift is not None:
            self.lift.advance(ts_ms, out.lift)
        if new_minute:
            self._advanced_minute = minute
            out.convergence.extend(self.convergence.observe(FlowFact(ts_ms, "", "", DELIVERY)))
            out.minutes.extend(self.minutes.close_before(minute))
        if self.learner.pending or self.learner.pending_sent:
            self._resolve(*self.learner.tick(ts_ms), out)
        if not new_minute:
            return
        if self.desk is not None and minute // 60 != self._desk_expired_hour:
            self._desk_expired_hour = minute // 60
            self.desk.expire(ts_ms)
        # the propensities as of every hour boundary crossed, then the forecast's rows there
        hour = self.propensity.hour
        if hour >= 0:
            for boundary in range((hour + 1) * HOUR_MS, ts_ms + 1, HOUR_MS):
                self._advance_flows(boundary, out)
        self._advance_flows(ts_ms, out)

    def _advance_flows(self, ts_ms: int, out: AnalyticsBatch) -> None:
        rows, moves = self.propensity.advance(ts_ms)
        out.propensities.extend(rows)
        for move in moves:
            self._move(move, ts_ms)
        forecasts, cohorts, alerts = self.forecast.advance(ts_ms)
        if forecasts or cohorts or alerts:
            out.forecasts.extend(forecasts)
            out.cohorts.extend(cohorts)
            out.flow_alerts.extend(alerts)
            out.forecast_quality.extend(self.forecast.take_quality())

    def _resolve(self, resolved: list[Resolved], events: list[ModelEvent],
                 graded: list, out: AnalyticsBatch) -> None:
        out.model_events.extend(events)
        if graded:
            out.model_metrics.extend(self.quality.add(graded))
        for r in resolved:
            allocation = self.bandit.reward(r.campaign, r.variant, r.engaged, r.ts_ms)
            if allocation is not None:
                out.allocations.append(allocation)

    def flush(self, out: AnalyticsBatch) -> None:
        out.forecasts.extend(self.forecast.flush())
        out.minutes.extend(self.minutes.flush())
        out.convergence.extend(self.convergence.flush())
        out.model_metrics.extend(self.quality.flush(self._last_ts))
        if self.lift is not None:
            self.lift.flush(out.lift)


class RecipientAnalytics:
    """Every recipient- and message-scoped book of the analytics (one shard's worth).

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
    #: Flow journeys on (their facts feed the propensities and cohort forecasts); off only
    #: to measure what they cost (bench/convergence_cost.py): nothing else changes.
    track_journeys = True
    revenue: dict[str, float] | None = None  # recipient hash -> conversions' value so far
    suppressed: set[str] | None = None  # recipients suppressed for good by an event
    lift: LiftUnits | None = None  # class default: snapshots from before control groups

    def __init__(self, attribution_window_s: int = 7 * 86_400, half_life_s: int = 86_400,
                 allowed_lateness_s: int = 3600, label_window_s: int = 86_400,
                 flow_window_s: int = 7 * 86_400, journeys: bool = True):
        # A delivery is remembered as long as anything can still use it: attribution
        # credit or a label (state is bounded by these two settings).
        self.tracker = MessageTracker(ttl_s=max(attribution_window_s, label_window_s))
        self.attribution = AttributionBook(window_s=attribution_window_s,
                                           half_life_s=half_life_s)
        self.history = HistoryBook(label_window_ms=label_window_s * 1000)
        self.journeys = JourneyBook(flow_window_s)
        self.send_times = SendTimeBook()
        self.lift = LiftUnits()
        self._expired_minute = -1
        self._last_ts = 0
        self._guard_ms = allowed_lateness_s * 1000
        self.track_journeys = journeys

    def configure(self, attribution_window_s: int, allowed_lateness_s: int,
                  label_window_s: int, flow_window_s: int = 7 * 86_400) -> None:
        """Settings after a restart apply to the state learned before it (a snapshot
        holds what was learned; the settings come from the configuration every start)."""
        self.attribution.set_window(attribution_window_s)
        self.journeys.set_window(flow_window_s)
        self.tracker.set_ttl(max(attribution_window_s, label_window_s))
        self.history.label_window_ms = label_window_s * 1000
        self._guard_ms = allowed_lateness_s * 1000

    def configure_lift(self, windows_days: tuple[int, ...], goal: str = "",
                       transactional: frozenset[str] = frozenset(),
                       campaigns: bool = True) -> None:
        """Control groups: outcome windows, the goal, the flows never held out."""
        if self.lift is None:  # a snapshot from before control groups
            self.lift = LiftUnits()
        self.lift.configure(windows_days, goal, transactional, campaigns)

    def lift_pending(self, out: AnalyticsBatch) -> None:
        """The input ended: every control-group window still open, as it stands."""
        if self.lift is not None:
            self.lift.pending(self._last_ts, out.facts)

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

    def forget(self, recipient_hash: str, up_to_ms: int) -> tuple[dict[str, int], list[Fact]]:
        """Erase one recipient from every book here; what went, per book, and the facts
        that erase them from the aggregates (convergence, pending labels, personas).

        >>> from operators.event import Event
        >>> def ev(kind, ts_ms, recipient="r1", message_id="m1"):
        ...     return (Event("", ts_ms, kind, "s", recipient, "gmail.com", "gmail.com",
        ...                   message_id, "c", "welcome", "", "Mozilla/5.0 Safari/604.1",
        ...                   "84.1.2.3", "", 0, "", "", "", "", 0.0, "", {}, "", 0, 0), None)
        >>> a = RecipientAnalytics()
        >>> out = a.apply([ev("delivered", 60_000), ev("delivered", 61_000, "r2", "m2"),
        ...                ev("click", 600_000)])
        >>> report, facts = a.forget("r1", up_to_ms=700_000)
        >>> report["tracker"], report["history"], report["journeys"], report["lift"]
        (1, 1, 1, 3)
        >>> sum(report.values())
        8
        >>> [type(f).__name__ for f in facts], len(facts[1].keys)
        (['ForgetRecipient', 'ForgetMessages'], 1)
        >>> len(a.apply([ev("open", 650_000)]).events), a.erased_dropped   # in flight: dropped
        (0, 1)
        >>> len(a.apply([ev("open", 800_000)]).events)   # after the erasure: new data
        1
        """
        messages = self.tracker.forget(recipient_suffix(recipient_hash))
        report = {
            "tracker": len(messages),
            "attribution": self.attribution.forget(recipient_hash),
            "history": self.history.forget(recipient_hash),
            "send_times": self.send_times.forget(recipient_hash),
        }
        report["journeys"], flows = self.journeys.forget(recipient_hash)
        if self.revenue:
            self.revenue.pop(recipient_hash, None)
        if self.suppressed:
            self.suppressed.discard(recipient_hash)
        if self.lift is not None:
            report["lift"] = self.lift.forget(recipient_hash)
        erased = dict(self._erased or {})
        erased[recipient_hash] = max(up_to_ms, erased.get(recipient_hash, up_to_ms))
        self._erased = erased
        ts = self._last_ts
        facts: list[Fact] = [
            ForgetRecipient(ts, recipient_hash),
            ForgetMessages(ts, recipient_hash, tuple(message_key(m) for m in messages), flows)]
        return report, facts

    def _expire_erasures(self, ts_ms: int) -> None:
        """Stop guarding erasures the stream's event time is well past (lateness)."""
        if self._erased:
            horizon = ts_ms - self._guard_ms
            self._erased = {h: up_to for h, up_to in self._erased.items() if up_to >= horizon}

    def flush(self) -> AnalyticsBatch:
        return empty_batch()

    def _learn(self, ev: Event, mkey: str, interaction: Interaction,
               bounce: BounceVerdict | None, credits: list[Credit], out: AnalyticsBatch
               ) -> None:
        """What the models hear about one event (facts), the recipient's history and
        send times. The history is read before it is updated: a score never sees the
        event it scores."""
        history, etype, r, ts = self.history, ev.type, ev.recipient_hash, ev.ts_ms
        facts = out.facts
        genuine = False
        if etype == "sent":
            facts.append(Sent(ts, message_key(mkey), ev.sender, ev.domain,
                              not history.ever_delivered(r)))
        elif etype == "delivered":
            key = message_key(mkey)
            facts.append(Delivered(ts, key, ev.message_id, r, ev.sender,
                                   ev.domain, ev.campaign_id, ev.variant,
                                   history.numbers(r, ts)))
            history.delivered(r, ts, key)
        elif etype == "bounce":
            if bounce is not None and bounce.bounce_class == "hard":
                facts.append(Bounced(ts, message_key(mkey)))
        elif etype == "open":
            history.opened(r, ts, interaction.is_human)
            genuine = interaction.is_human
        elif etype in ("click", "reply"):
            if interaction.is_human:
                history.engaged(r, ts, message_key(mkey))
                facts.append(Labelled(ts, message_key(mkey), ENGAGED))
                genuine = True
        elif etype == "conversion":
            if ev.value > 0:
                revenue = self.revenue
                if revenue is None:
                    revenue = self.revenue = {}
                revenue[r] = revenue.get(r, 0.0) + ev.value
            last = next((c.touch.message_id for c in credits if c.model == "last_touch"), "")
            credited = message_key(message_key_for(last, r)) if last else -1
            history.engaged(r, ts, credited)
            if last:
                facts.append(Labelled(ts, credited, ENGAGED | CONVERTED))
            genuine = True
        elif etype in ("unsubscribe", "complaint"):
            facts.append(Labelled(ts, message_key(mkey), UNSUBSCRIBED))
        if genuine:  # machine opens never reach the send-time book
            self.send_times.evaluate(r, ev.domain, ts)
            update = self.send_times.engage(r, ev.domain, ts)
            if update is not None:
                out.send_times.append(update)

    def _suppressed(self, ev: Event, reason: str, out: AnalyticsBatch) -> None:
        """Suppressed for good (the parse step published it): later out-of-office replies
        hold nothing, and the reply desk overwrites a hold it published before."""
        suppressed = self.suppressed
        if suppressed is None:
            suppressed = self.suppressed = set()
        suppressed.add(ev.recipient_hash)
        out.facts.append(Suppressed(ev.ts_ms, ev.recipient_hash, reason, ev.sender, ev.domain,
                                    ev.event_id))

    def _reply(self, ev: Event, out: AnalyticsBatch) -> Event:
        """A reply joined to the message it answers (its campaign and flow, when the reply
        does not say), and its fact for the reply desk (what the recipient is worth too)."""
        r = ev.recipient_hash
        if ev.message_id:
            touch = self.attribution.touch_of(ev.sender, r, ev.message_id)
            if touch is not None:
                ev = ev._replace(message_id=touch.message_id,  # as delivered (no <>)
                                 campaign_id=ev.campaign_id or touch.campaign_id,
                                 flow_id=ev.flow_id or touch.flow_id)
        read = ev.attrs.get("reply")
        if isinstance(read, ReplyRead):
            numbers = self.history.numbers(r, ev.ts_ms)
            out.facts.append(ReplyFact(
                ev.ts_ms, str(ev.attrs.get("reply_id") or ev.event_id), ev.message_id,
                ev.sender, r, ev.domain, ev.campaign_id, ev.flow_id, read,
                min(1.0, numbers[3]), (self.revenue or {}).get(r, 0.0),
                r in (self.suppressed or ())))
        return ev

    def _lift(self, ev: Event, interaction: Interaction, out: AnalyticsBatch) -> None:
        """Control groups: an assignment (a send or a holdout) or an outcome."""
        lift = self.lift
        if lift is None:
            return
        if lift.due(ev.ts_ms):
            lift.advance(ev.ts_ms, out.facts)
        a = ev.attrs
        lift.observe(ev.type, ev.ts_ms, ev.recipient_hash, ev.flow_id, ev.campaign_id,
                     _attr(a, "group"), _attr(a, "experiment"), _attr(a, "arm"), ev.goal,
                     ev.value, interaction.is_human, out.facts)

    def advance(self, ts_ms: int, out: AnalyticsBatch) -> None:
        """Event time reached `ts_ms` (no event before it is still to come): the journey
        timers due by then fire, as facts stamped with their due time (so the models see
        them at that time, however the recipients were sharded)."""
        journeys, history = self.journeys, self.history
        if journeys.due(ts_ms):
            out.facts.extend(journeys.tick(ts_ms, lambda h: history.numbers(h, ts_ms)))
        lift = self.lift
        if lift is not None and lift.due(ts_ms):
            lift.advance(ts_ms, out.facts)

    def _journeys(self, ev: Event, mkey: str, interaction: Interaction,
                  bounce: BounceVerdict | None, attributed: tuple[str, ...],
                  out: AnalyticsBatch) -> None:
        """Flow journeys: the timers now due, then what this event changed (facts for the
        convergence propensity in the models' step)."""
        journeys, history, r, ts = self.journeys, self.history, ev.recipient_hash, ev.ts_ms
        if journeys.due(ts):
            self.advance(ts, out)
        etype = ev.type
        if etype == "delivered":
            if not ev.flow_id:
                return
        elif r not in journeys.open:  # no open journey: nothing of theirs can change
            return
        facts = journeys.observe(
            etype, ts, r, ev.sender, ev.domain, ev.flow_id,
            message_key(mkey) if etype == "delivered" and mkey else 0,
            interaction.is_human, attributed, lambda: history.numbers(r, ts),
            hard_bounce=bounce is not None and bounce.bounce_class == "hard")
        if facts:
            out.facts.extend(facts)

    def _one(self, ev: Event, bounce: BounceVerdict | None, out: AnalyticsBatch) -> None:
        # A provider's message id can be shared by all recipients of one send (SendGrid's
        # X-Message-Id across personalizations): per-message state is per recipient too.
        etype = ev.type
        if etype == "reply_feedback":  # about a reply, not a recipient: for the reply desk
            a = ev.attrs
            out.facts.append(FeedbackFact(ev.ts_ms, str(a.get("reply_id", "")),
                                          str(a.get("action", "")), str(a.get("queue") or ""),
                                          str(a.get("intent") or "")))
            return
        if etype == "holdout":  # a message deliberately not sent: nothing else hears of it
            self._lift(ev, _HUMAN, out)
            out.events.append(Enriched(ev, None, _HUMAN, ()))
            self._last_ts = max(self._last_ts, ev.ts_ms)
            return
        if etype == "reply":
            ev = self._reply(ev, out)
        mkey = message_key_for(ev.message_id, ev.recipient_hash)
        interaction = self.tracker.apply(ev._replace(message_id=mkey) if mkey else ev)
        flow = ev.flow_id
        if etype == "reply" and interaction.is_human and _reply_intent(ev) not in ENGAGING_REPLIES:
            # a person wrote it, but a refusal is no engagement (kept apart from machines)
            interaction = interaction._replace(is_human=False, reason="reply_not_engaging")
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
                if _reply_intent(ev) in _NEGATIVE_REPLIES:
                    facts.append(FlowFact(ev.ts_ms, flow, ev.recipient_hash, NEGATIVE))
                else:
                    kind = HUMAN_INTERACTION if interaction.is_human else MACHINE_INTERACTION
                    facts.append(FlowFact(ev.ts_ms, flow, ev.recipient_hash, kind,
                                          interaction.latency_s))
            elif etype in ("complaint", "unsubscribe") or (
                    etype == "bounce" and bounce is not None and bounce.bounce_class == "hard"):
                facts.append(FlowFact(ev.ts_ms, flow, ev.recipient_hash, NEGATIVE))
        reason = suppression_reason(etype, bounce)  # the parse step's own rule
        if reason is not None:
            self._suppressed(ev, reason, out)
        out.facts.extend(facts)
        out.facts.append(MinuteEvent(
            ev.ts_ms, ev.sender, ev.domain, ev.campaign_id, flow, etype, interaction.is_human,
            bounce.bounce_class if bounce is not None else "", ev.value, interaction.latency_s))
        out.events.append(Enriched(ev, bounce, interaction, attributed))
        if etype in _LIFT_TYPES:
            self._lift(ev, interaction, out)
        self._learn(ev, mkey, interaction, bounce, credits, out)
        if self.track_journeys:
            self._journeys(ev, mkey, interaction, bounce, attributed, out)
        self._last_ts = max(self._last_ts, ev.ts_ms)
        minute = ev.ts_ms // MINUTE_MS
        if minute >= self._expired_minute + 10:  # every 10 minutes: forget what no window reaches
            self._expired_minute = minute
            self.tracker.expire(ev.ts_ms)
            self.attribution.expire(ev.ts_ms)
            self._expire_erasures(ev.ts_ms)


def _reply_intent(ev: Event) -> str:
    read = ev.attrs.get("reply")
    return read.verdict.intent if isinstance(read, ReplyRead) else "other"


class EngagementAnalytics:
    """All of it in one process: a `RecipientAnalytics` whose facts go straight into
    one `FlowAggregates`, and the scores into one `PersonaBook` (events in event-time
    order; what one shard of one would do).

    Erasure (`forget`) reaches every book.
    """

    def __init__(self, attribution_window_s: int = 7 * 86_400, half_life_s: int = 86_400,
                 allowed_lateness_s: int = 3600, windows: dict[str, int] | None = None,
                 label_window_s: int = 86_400, reset_on_drift: bool = False,
                 journeys: bool = True):
        self.recipients = RecipientAnalytics(attribution_window_s, half_life_s,
                                             allowed_lateness_s, label_window_s=label_window_s,
                                             journeys=journeys)
        self.aggregates = FlowAggregates(allowed_lateness_s, windows,
                                         label_window_s=label_window_s,
                                         reset_on_drift=reset_on_drift)
        self.personas = PersonaBook()

    @property
    def learner(self) -> Learner:
        return self.aggregates.learner

    @property
    def late(self) -> int:
        """Events later than the allowed lateness (left out of `metrics_1m`)."""
        return self.aggregates.late

    @property
    def erased_dropped(self) -> int:
        return self.recipients.erased_dropped

    def apply(self, items: list[tuple[Event, BounceVerdict | None]],
              out: AnalyticsBatch | None = None) -> AnalyticsBatch:
        out = empty_batch() if out is None else out
        recipients, aggregates, facts = self.recipients, self.aggregates, out.facts
        for item in items:
            recipients.apply([item], out)
            # Every event moves the books' minute, as in the unsharded job; journey timers
            # come stamped with their due time (before the event), as the merge orders them.
            timed = [f for f in facts if type(f) in TIMED_FACTS and f.ts_ms < item[0].ts_ms]
            for fact in sorted(timed, key=lambda f: f.ts_ms):
                aggregates.advance(fact.ts_ms, out)
                aggregates.apply([fact], out)
            aggregates.advance(item[0].ts_ms, out)
            aggregates.apply([f for f in facts if type(f) not in TIMED_FACTS
                              or f.ts_ms >= item[0].ts_ms], out)
            facts.clear()
            if out.personas:
                out.profiles.extend(self.personas.apply(out.personas))
                out.personas.clear()
        return out

    def forget(self, recipient_hash: str, up_to_ms: int) -> dict[str, int]:
        report, facts = self.recipients.forget(recipient_hash, up_to_ms)
        report["convergence"] = self.aggregates.convergence.forget(recipient_hash)
        report["pending_labels"] = self.aggregates.learner.forget(facts[1].keys)
        moves = self.aggregates.propensity.forget(recipient_hash, facts[1].ts_ms)
        for move in moves:
            self.aggregates._move(move, facts[1].ts_ms)
        report["propensities"] = len(moves)
        report["personas"] = self.personas.forget(recipient_hash)
        desk = self.aggregates.desk
        report["replies"] = len(desk.forget(recipient_hash)) if desk is not None else 0
        return report

    def flush(self) -> AnalyticsBatch:
        out = self.recipients.flush()
        self.aggregates.flush(out)
        return out
