"""Recipient shards and the keyed merges after them: the steps that share the work.

    parse ─ route_to_shards ─► shard "0000".."<S-1>"  (event-time gates + recipient state)
                                 │ signals ("s:<sender>", "p:<provider>") ─► throttle
                                 │ rows of recipient tables ─────────────────► batch_rows
                                 └ facts ─► merge "agg:0".."agg:<A-1>" (metrics_1m,
                                            │  convergence) ─► batch_rows
                                            merge "models" (scores, learning, model
                                               quality, variant splits) ─► batch_rows
                                               └ scores ─► personas (by recipient shard)

**Shards.** Everything scoped to a recipient lives in one of `shards` logical
shards (a stable hash of the recipient hash, fixed when the job's state is
created): the message tracker, attribution, the recipient histories the models'
features come from, send times, and (in the `personas` step, keyed the same
way) personas. Each shard gates its own input on the progress of *every* input
partition (progress rides along with each parsed batch, to every shard), so it
sees its events in one event-time order, however many workers or processes
read the partitions. Throttle signals go to the shard of their sender and of
their provider: each throttle book then hears from one shard only, in order.

**Merges.** Sums over recipients are kept by `MERGE_KEYS` keyed merges, each
fed the facts of every shard. A merge releases facts once every shard has said
it is past them (each shard reports how far it is: by event-time minute to the
sums, by second to the models, whose scores wait for it), in the order (event
time, shard, sequence): the same order, and so the same rows, for 1 worker,
4 workers or 2 processes.

**Models.** The online models are one keyed step (`MODELS`): each shard sends
what it knows at a delivery (the recipient's history as numbers, the message's
context) and the positive labels as they happen; the models' merge scores,
keeps the pending labels, learns when a label's window closes, and grades every
label against the prediction made before it. So the models learn from every
recipient, as an unsharded job's did: quality does not depend on the shard
count (one replica per shard learnt from 1/64 of the traffic each and lost
0.04 ROC AUC). The price is that one worker does all predicting and learning
(~64 µs of CPU per delivery), and a score leaves about a second after its delivery
(once every shard is past it).

The number of workers and processes decides only which worker owns which
shard and merge, never a result.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import zlib
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

import bytewax.operators as op
import orjson
from bytewax.connectors.kafka import KafkaSinkMessage

from flows.parse import ParsedBatch, erased_by
from flows.replies import starting_reply_model
from flows.settings import Settings
from flows.stats import STATS
from operators.analytics import (
    MODELS,
    TIMED_FACTS,
    AnalyticsBatch,
    Fact,
    FlowAggregates,
    RecipientAnalytics,
    empty_batch,
    fact_key,
)
from operators.bounces import BounceVerdict
from operators.lift import TABLE_SCOPES, LiftRow, LiftShares
from operators.lift_stats import SRM_ALARM_P, srm_p
from operators.ordering import EventTimeGate
from operators.personas import PersonaBook
from operators.throttle import Signal
from schemas import rows as out
from schemas.control import EraseCommand, Erasure, erasable_tables
from schemas.events import Event
from schemas.topics import (
    FLOW_ALERTS,
    FLOW_PROPENSITIES,
    ROUTES,
    SCORES,
    SEND_TIMES,
    SUPPRESSIONS,
    VARIANTS,
)

log = logging.getLogger(__name__)
#: Keyed merges of the facts of every shard (fixed, like the shard count).
MERGE_KEYS = 8
#: "Past the end": what a shard reports at the end of input.
END_MS = 2 ** 62
_MINUTE_MS = 60_000
EVENTS, ATTRIBUTION, METRICS, CONVERGENCE = ("mailflow.events", "mailflow.attribution",
                                             "mailflow.metrics_1m", "mailflow.convergence")
PROFILES = "mailflow.recipient_profiles"
#: Tables whose rows an erasure deletes, and the column holding the recipient hash.
ERASABLE = erasable_tables(out.TABLE_COLUMNS)


def lift_shares(settings: Settings) -> LiftShares:
    """The configured control-group split (what the sample-ratio tests expect; the same
    shares `schemas.assignment.Assigner` assigns by)."""
    return LiftShares(
        settings.global_control_share, settings.holdout_share,
        {str(k): float(v) for k, v in settings.holdouts.items()},
        frozenset(settings.transactional_flows),
        {str(k): float(v) for k, v in settings.experiment_shares.items()})


def shard_of(text: str, shards: int) -> int:
    """A stable shard for a recipient hash, sender or provider (the same in every process).

    >>> shard_of("gmail.com", 64) == shard_of("gmail.com", 64), 0 <= shard_of("x", 64) < 64
    (True, True)
    """
    return zlib.crc32(text.encode()) % shards


def shard_key(index: int) -> str:
    return f"{index:04d}"


#: Every merge key: the sums ("agg:<i>") and the models.
AGG_KEYS = [f"agg:{i}" for i in range(MERGE_KEYS)]
MERGES = [*AGG_KEYS, MODELS]
#: How finely a shard reports its progress to the models (the scores wait for it).
MODELS_STEP_MS = 1000


def merge_key_of(fact: Fact) -> list[str]:
    """The merges a fact goes to: the models, one by its aggregate's key, or every sum
    (a recipient's erasure from the convergence books)."""
    key = fact_key(fact)
    if key == MODELS:
        return [MODELS]
    if not key:
        return AGG_KEYS
    return [f"agg:{zlib.crc32(key.encode()) % MERGE_KEYS}"]


# -- the route to the shards --------------------------------------------------------------

class ShardInput(NamedTuple):
    """One parsed batch's share for one shard, and the progress every shard must hear."""

    shard: str
    events: list[tuple[Event, BounceVerdict | None]]
    signals: list[tuple[str, Signal]]  # (throttle book key, signal)
    progress: dict[str, int]  # newest event time per input partition in the batch
    caught_up: list[str]
    erasures: list[EraseCommand]


def route_to_shards(shards: int, batch: ParsedBatch | EraseCommand
                    ) -> list[tuple[str, ShardInput]]:
    """Events to their recipient's shard, signals to their sender's and provider's;
    partition progress to every shard (a shard with nothing held must still move on)."""
    if type(batch) is EraseCommand:
        key = shard_key(shard_of(batch.recipient_hash, shards))
        return [(key, ShardInput(key, [], [], {}, [], [batch]))]
    events: dict[int, list] = {}
    signals: dict[int, list] = {}
    for item in batch.events:
        events.setdefault(shard_of(item[0].recipient_hash, shards), []).append(item)
    for sig in batch.signals:
        signals.setdefault(shard_of(sig.sender, shards), []).append(("s:" + sig.sender, sig))
        signals.setdefault(shard_of(sig.domain, shards), []).append(("p:" + sig.domain, sig))
    progress, caught_up = batch.progress, batch.caught_up
    everyone = bool(progress or caught_up)
    return [(key, ShardInput(key, events.get(i, []), signals.get(i, []), progress, caught_up,
                             []))
            for i in range(shards) if everyone or i in events or i in signals
            for key in (shard_key(i),)]


# -- shards ---------------------------------------------------------------------------------

class MergeInput(NamedTuple):
    """A shard's facts for one merge, and how far the shard is: every later fact it sends
    is stamped at or after `progress_ms`."""

    shard: str
    progress_ms: int
    facts: list[tuple[int, int, Fact]]  # (stamp: event time, shard sequence, fact)


class ShardOutput(NamedTuple):
    signals: list[tuple[str, tuple[str, list[Signal]]]]  # keyed for the throttle books
    tables: list[tuple[str, Any]]  # (table, rows or an Erasure)
    kafka: list[KafkaSinkMessage]
    merges: list[tuple[str, MergeInput]]


class WorkBudget(threading.local):
    """Analytics work per worker thread and round: at most `slice_s`, over all its shards.

    Every shard of a worker runs on its thread, and Bytewax calls all of a step's
    keys in one go: a backlog in 64 shards must not hold up the throttle decisions
    that share the thread. A round is the run of calls without a pause longer than
    `gap_s` between them (other steps ran in the pause); the shards that find the
    round's budget spent wait for the next (asking to be called at once). Past
    `MAX_QUEUED` waiting events a shard works regardless (memory stays bounded)."""

    def __init__(self, slice_s: float = 0.02, gap_s: float = 0.001):
        self.slice_s, self.gap_s = slice_s, gap_s
        self.round_start = self.last_end = 0.0
        self.used = 0.0

    def left(self, now: float) -> float:
        if now - self.last_end > self.gap_s or now - self.round_start > 4 * self.slice_s:
            self.round_start, self.used = now, 0.0
        return self.slice_s - self.used

    def spend(self, started: float, ended: float) -> None:
        self.used += ended - started
        self.last_end = ended


BUDGET = WorkBudget()
#: Per-shard gauges, summed for the admin endpoint.
_GAUGES: dict[str, tuple[int, int, int]] = {}
_ERASED: dict[str, int] = {}


class ShardState:
    """What a shard has learned and holds (settings are not part of it)."""

    def __init__(self, settings: Settings) -> None:
        self.signals = EventTimeGate(settings.order_slack_ms, strict=True)
        self.events = EventTimeGate(0, tiebreak=source_position, strict=True)
        self.idle: set[str] = set()
        self.analytics = RecipientAnalytics(
            attribution_window_s=settings.attribution_window_s,
            allowed_lateness_s=settings.allowed_lateness_s,
            label_window_s=settings.label_window_s, flow_window_s=settings.flow_window_s)
        self.queued: list[tuple[Event, BounceVerdict | None]] = []
        self.clock = -1  # newest event time applied
        self.seq = 0  # facts sent so far (their order among equal event times)
        self.reported = -1  # the last progress (minute) the sums heard
        self.reported_models = -1  # the last progress (second) the models heard

    def configure(self, settings: Settings) -> None:
        self.signals.slack_ms = settings.order_slack_ms
        self.analytics.configure(settings.attribution_window_s, settings.allowed_lateness_s,
                                 settings.label_window_s, settings.flow_window_s)
        self.analytics.configure_lift(settings.lift_windows(), settings.lift_goal,
                                      lift_shares(settings).transactional,
                                      bool(settings.lift_campaigns))

    def progress_for(self, merge: str) -> int:
        return self.reported_models if merge == MODELS else self.reported


def source_position(item: tuple[Event, Any]) -> tuple[str, int, int]:
    """Events with equal event time leave in source order, however input was batched."""
    ev = item[0]
    return ev.topic, ev.partition, ev.offset


class ShardLogic(op.StatefulBatchLogic):
    """One recipient shard: two event-time gates (signals with slack for the throttle,
    events strictly in order for analytics) and the shard's `RecipientAnalytics`."""

    POLL_S = 0.02
    CHUNK = 64
    MAX_QUEUED = 50_000

    def __init__(self, settings: Settings, partitions: list[str], snapshots: bool,
                 resume: bytes | None):
        self.partitions, self.snapshots = partitions, snapshots
        self.shard = ""
        # The last snapshot, kept while nothing but partition progress reached the shard:
        # an epoch then costs nothing here (progress goes to every shard with every
        # batch). Resuming from it is safe: older progress only holds items longer.
        self._snapshot: bytes | None = None
        self._changed = True
        if resume is None:
            self.state = ShardState(settings)
        else:
            self.shard, self.state = pickle.loads(resume)
        self.state.configure(settings)  # a restart applies today's settings

    def on_batch(self, values: list[ShardInput]) -> tuple[list[ShardOutput], bool]:
        st = self.state
        signals: list[tuple[int, tuple[str, Signal]]] = []
        result = ShardOutput([], [], [], [])
        for value in values:
            self.shard = value.shard
            if value.events or value.signals or value.erasures:
                self._changed = True
            for command in value.erasures:
                self._erase(command, result)
            if value.progress:
                st.idle.difference_update(value.progress)  # moving again
            st.idle.update(value.caught_up)
            signals += st.signals.add(((s.ts_ms, pair) for pair in value.signals
                                       for s in (pair[1],)), value.progress,
                                      st.idle, self.partitions)
            st.queued += [item for _ts, item in st.events.add(
                ((item[0].ts_ms, item) for item in value.events), value.progress, st.idle,
                self.partitions)]
        return self._out(signals, result, final=False)

    def on_notify(self) -> tuple[list[ShardOutput], bool]:
        st = self.state
        signals = st.signals.release(st.idle, self.partitions)
        st.queued += [item for _ts, item in st.events.release(st.idle, self.partitions)]
        return self._out(signals, ShardOutput([], [], [], []), final=False)

    def on_eof(self) -> tuple[list[ShardOutput], bool]:
        st = self.state
        signals = st.signals.flush()
        st.queued += [item for _ts, item in st.events.flush()]
        return self._out(signals, ShardOutput([], [], [], []), final=True)

    def notify_at(self) -> datetime | None:
        st = self.state
        if st.queued:  # more work: as soon as the thread has had its turn elsewhere
            return datetime.now(UTC)
        if st.signals.held or st.events.held:
            return datetime.now(UTC) + timedelta(seconds=self.POLL_S)
        return None

    def _out(self, signals: list, result: ShardOutput, final: bool
             ) -> tuple[list[ShardOutput], bool]:
        st = self.state
        if signals or st.queued or final:
            self._changed = True
        if signals:
            by_book: dict[str, list[Signal]] = {}
            for _ts, (book, sig) in signals:
                by_book.setdefault(book, []).append(sig)
            result.signals.extend((book, (book, sigs)) for book, sigs in by_book.items())
        batch = self._work(final)
        self._report(batch, result, final)
        tables, kafka = batch_outputs(batch)
        result.tables.extend(tables)
        result.kafka.extend(kafka)
        _GAUGES[self.shard] = (st.signals.held, st.events.held, len(st.queued))
        STATS.signals_held, STATS.events_held, STATS.analytics_queued = shard_gauges()
        _ERASED[self.shard] = st.analytics.erased_dropped
        STATS.erased_events = sum(_ERASED.values())
        if any(result):
            return [result], self.RETAIN
        return [], self.RETAIN

    def _work(self, final: bool) -> AnalyticsBatch:
        """Apply queued events while this worker's budget lasts (all of them at the end)."""
        st = self.state
        batch = empty_batch()
        queued = st.queued
        if not queued:
            return batch
        started = time.perf_counter()
        budget = BUDGET.left(started)
        if budget <= 0 and not final and len(queued) <= self.MAX_QUEUED:
            # This round's budget is spent: wait for the next, without counting as work
            # (a call that does nothing must not keep the round open).
            return batch
        deadline = started + max(budget, 0.0)
        done, stamped = 0, []
        facts = batch.facts
        apply, chunk = st.analytics.apply, self.CHUNK
        while done < len(queued) and (final or (done == 0 and budget > 0)
                                      or time.perf_counter() < deadline
                                      or len(queued) - done > self.MAX_QUEUED):
            for item in queued[done:done + chunk]:
                ts = item[0].ts_ms
                if ts > st.clock:
                    st.clock = ts
                apply([item], batch)
                if facts:
                    for fact in facts:
                        # journey timers carry their due time (never before what this
                        # shard reported: `_report` fires them as event time passes)
                        stamp = fact.ts_ms if type(fact) in TIMED_FACTS else st.clock
                        stamped.append((stamp, st.seq, fact))
                        st.seq += 1
                    facts.clear()
            done += chunk
        applied = min(done, len(queued))
        del queued[:applied]
        ended = time.perf_counter()
        BUDGET.spend(started, ended)
        STATS.analytics_seconds += ended - started
        STATS.analytics_events += applied
        batch.facts.extend(stamped)  # now (stamp, seq, fact) triples
        return batch

    def _report(self, batch: AnalyticsBatch, result: ShardOutput, final: bool) -> None:
        """Facts to their merges, with how far this shard is: to the sums by minute, to the
        models by second (the scores wait for it), or the end."""
        st = self.state
        if final:
            frontier = END_MS
            # Control-group windows still open: the merges report them only if no window
            # of their unit closed (stamped where this shard's facts may still go).
            ends = empty_batch()
            st.analytics.lift_pending(ends)
            # (a shard restored from an earlier end of input reported END_MS then: never a
            # stamp, the merges would advance every hour to it)
            floor = max(p for p in (st.clock, st.reported, st.reported_models) if p < END_MS)
            for fact in ends.facts:
                batch.facts.append((max(fact.ts_ms, floor), st.seq, fact))
                st.seq += 1
        else:
            frontier = st.events.open_below
            if st.queued:
                frontier = min(frontier, st.queued[0][0].ts_ms)
            frontier = max(frontier, st.clock)  # the clock never goes back
            # Journey timers due by now fire even if no event of this shard comes (they
            # must never be stamped before what the models heard this shard is past).
            timers = empty_batch()
            st.analytics.advance(frontier, timers)
            for fact in timers.facts:
                batch.facts.append((fact.ts_ms, st.seq, fact))
                st.seq += 1
        by_merge: dict[str, list] = {}
        for triple in batch.facts:
            for key in merge_key_of(triple[2]):
                by_merge.setdefault(key, []).append(triple)
        if final or frontier // _MINUTE_MS * _MINUTE_MS > st.reported:
            st.reported = frontier if final else frontier // _MINUTE_MS * _MINUTE_MS
            for key in AGG_KEYS:
                by_merge.setdefault(key, [])
        if final or frontier // MODELS_STEP_MS * MODELS_STEP_MS > st.reported_models:
            st.reported_models = frontier if final else frontier // MODELS_STEP_MS * MODELS_STEP_MS
            by_merge.setdefault(MODELS, [])
        result.merges.extend((key, MergeInput(self.shard, st.progress_for(key), facts))
                             for key, facts in by_merge.items())

    def _erase(self, command: EraseCommand, result: ShardOutput) -> None:
        """Forget the recipient here, then tell every table, topic and merge to."""
        st = self.state
        h = command.recipient_hash
        before = len(st.queued)
        erased = erased_by(command)
        st.events.discard(erased)
        st.queued = [item for item in st.queued if not erased(item)]
        report, facts = st.analytics.forget(h, command.up_to_ms)
        report["queued"] = before - len(st.queued)
        STATS.erasures += 1
        result.tables.extend((table, Erasure(h, column)) for table, column in ERASABLE.items())
        result.kafka.append(KafkaSinkMessage(h.encode(), None, topic=SEND_TIMES))
        result.kafka.extend(KafkaSinkMessage(f"{flow}|{h}".encode(), None,
                                             topic=FLOW_PROPENSITIES)
                            for flow in facts[1].flows)
        for fact in facts:
            triple = (max(st.clock, 0), st.seq, fact._replace(ts_ms=max(st.clock, 0)))
            st.seq += 1
            result.merges.extend((key, MergeInput(self.shard, st.progress_for(key), [triple]))
                                 for key in merge_key_of(fact))
        log.info(
            "erased recipient %s… (requested %s, %s:%d:%d): %s", h[:8],
            command.requested_at or "?", command.topic, command.partition, command.offset,
            report)

    def snapshot(self) -> bytes | None:
        # Bytewax asks at every epoch, recovery or not; without recovery nobody reads it.
        if not self.snapshots:
            return None
        if self._changed or self._snapshot is None:
            self._snapshot = pickle.dumps((self.shard, self.state),
                                          protocol=pickle.HIGHEST_PROTOCOL)
            self._changed = False
        return self._snapshot


def batch_outputs(batch: AnalyticsBatch) -> tuple[list[tuple[str, list]], list]:
    """Rows of the analytics tables, and the compacted topics' records, for what a
    shard (events, attribution, send times) or a merge (sums, scores, model rows)
    produced."""
    a = batch
    tables = [
        (EVENTS, [out.event_row(e.event, e.bounce, e.interaction, e.attributed_flows)
                  for e in a.events]),
        (ATTRIBUTION, [out.attribution_row(ev, c) for ev, c in a.credits]),
        ("mailflow.send_times", [out.send_time_row(st) for st in a.send_times]),
        (METRICS, [out.metrics_row(r) for r in a.minutes]),
        (CONVERGENCE, [out.convergence_row(r) for r in a.convergence]),
        ("mailflow.scores", [out.score_row(sc) for sc in a.scores]),
        ("mailflow.model_events", [tuple(e) for e in a.model_events]),
        ("mailflow.model_metrics", [out.model_metric_row(r) for r in a.model_metrics]),
        ("mailflow.variant_allocations", [row for al in a.allocations
                                          for row in out.allocation_rows(al)]),
        ("mailflow.flow_propensities", [out.flow_propensity_row(r) for r in a.propensities]),
        ("mailflow.convergence_forecast", [out.forecast_row(r) for r in a.forecasts]),
        ("mailflow.cohort_outcomes", [out.cohort_outcome_row(r) for r in a.cohorts]),
        ("mailflow.flow_alerts", [out.flow_alert_row(r) for r in a.flow_alerts]),
        ("mailflow.forecast_quality", [out.forecast_quality_row(r)
                                       for r in a.forecast_quality]),
        ("mailflow.replies", [out.reply_row(r) for r in a.routes]),
        ("mailflow.reply_feedback", [out.feedback_row(f) for f in a.feedback]),
        ("mailflow.suppressions", [out.reply_suppression_row(s)
                                   for s in a.reply_suppressions]),
        ("mailflow.lift", [out.lift_row(r) for r in a.lift if r.scope in TABLE_SCOPES]),
        ("mailflow.lift_segments", [out.lift_segment_row(r) for r in a.lift
                                    if r.scope not in TABLE_SCOPES]),
    ]
    kafka = (
        [KafkaSinkMessage(sc.message_id.encode(), orjson.dumps(out.score_record(sc)),
                          topic=SCORES) for sc in a.scores]
        + [KafkaSinkMessage(st.recipient_hash.encode(), orjson.dumps(out.send_time_record(st)),
                            topic=SEND_TIMES) for st in a.send_times]
        + [KafkaSinkMessage(al.campaign_id.encode(), orjson.dumps(out.allocation_record(al)),
                            topic=VARIANTS) for al in a.allocations]
        + [KafkaSinkMessage(f"{r.flow_id}|{r.recipient_hash}".encode(),
                            orjson.dumps(out.flow_propensity_record(r)), topic=FLOW_PROPENSITIES)
           for r in a.propensities if r.publish]
        + [KafkaSinkMessage(r.flow_id.encode(), orjson.dumps(out.flow_alert_record(r)),
                            topic=FLOW_ALERTS) for r in a.flow_alerts]
        + [KafkaSinkMessage(r.reply_id.encode(), orjson.dumps(out.route_record(r)),
                            topic=ROUTES) for r in a.routes]
        + [KafkaSinkMessage(s.recipient_hash.encode(),
                            orjson.dumps(out.reply_suppression_record(s)), topic=SUPPRESSIONS)
           for s in a.reply_suppressions]
        + [KafkaSinkMessage(reply_id.encode(), None, topic=ROUTES)
           for reply_id in a.erased_routes])
    return [(table, rows) for table, rows in tables if rows], kafka


def watch_splits(rows: list[LiftRow]) -> None:
    """Say loudly when a unit's control-group split breaks (and when it is sound again):
    a broken split makes every lift of the unit meaningless."""
    STATS.lift_rows += len(rows)
    alarms = STATS.lift_srm_alarms
    for r in rows:
        unit = f"{r.scope}:{r.key}"
        p = srm_p(r.treated_assigned, r.control_assigned, r.expected_control_share)
        if p < SRM_ALARM_P:
            if unit not in alarms:
                log.warning(
                    "SPLIT BROKEN for %s %r: %d treated against %d control, expected control "
                    "share %.3g (sample-ratio p=%.2g): every lift of it is meaningless until "
                    "the holdout events are fixed", r.scope, r.key, r.treated_assigned,
                    r.control_assigned, r.expected_control_share, p)
            alarms[unit] = p
        elif alarms.pop(unit, None) is not None:
            log.warning("split of %s %r sound again (sample-ratio p=%.2g)", r.scope, r.key, p)


# -- merges -------------------------------------------------------------------------------

def merge_order(item: tuple[str, int, Fact]) -> tuple[str, int]:
    """Facts with equal event time: by shard, then in the order the shard made them."""
    return item[0], item[1]


class MergeOutput(NamedTuple):
    tables: list[tuple[str, list[tuple]]]
    kafka: list[KafkaSinkMessage]
    personas: list[tuple[str, list]]  # (recipient shard, Scored / ForgetRecipient items)


class MergeLogic(op.StatefulBatchLogic):
    """One keyed merge: the facts of every shard, released in (time, shard, seq) order
    once every shard is past them, into one `FlowAggregates`. The models' merge
    (`MODELS`) scores and learns; its scores go on to their recipients' personas."""

    def __init__(self, settings: Settings, shards: int, snapshots: bool, resume: bytes | None):
        self.shards = [shard_key(i) for i in range(shards)]
        self.snapshots = snapshots
        if resume is None:
            self.gate = EventTimeGate(0, tiebreak=merge_order, strict=True)
            self.aggregates = FlowAggregates(settings.allowed_lateness_s,
                                             label_window_s=settings.label_window_s)
        else:
            self.gate, self.aggregates = pickle.loads(resume)
        self.aggregates.configure(settings.allowed_lateness_s, settings.label_window_s,
                                  bool(settings.reset_on_drift))
        self.aggregates.configure_flows(settings.propensity_step, settings.stop_mailing_below,
                                        settings.flow_window_s, settings.forecast_alert_margin)
        self.aggregates.configure_lift(lift_shares(settings), settings.lift_goal)
        self.aggregates.configure_replies(settings.routing_policy(),
                                          partial(starting_reply_model, settings.reply_model))

    def on_batch(self, values: list[MergeInput]) -> tuple[list[MergeOutput], bool]:
        released: list = []
        for value in values:
            released += self.gate.add(
                ((stamp, (value.shard, seq, fact)) for stamp, seq, fact in value.facts),
                {value.shard: value.progress_ms}, set(), self.shards)
        return self._apply(released, self.gate.open_below), self.RETAIN

    def on_eof(self) -> tuple[list[MergeOutput], bool]:
        result = self._apply(self.gate.flush())
        batch = empty_batch()
        self.aggregates.flush(batch)
        return result + self._outputs(batch), self.RETAIN

    def _apply(self, released: list, reached: int = -1) -> list[MergeOutput]:
        """Apply released facts in order; then every shard is past `reached`: the minutes
        before it are complete (their rows are the same whenever they are written)."""
        batch = empty_batch()
        aggregates = self.aggregates
        for stamp, (_shard, _seq, fact) in released:
            aggregates.advance(stamp, batch)
            aggregates.apply([fact], batch)
        if 0 <= reached < END_MS:
            aggregates.advance(reached, batch)
        STATS.late_events = aggregates.late
        desk = aggregates.desk
        if desk is not None:  # the models' merge, once a reply came
            STATS.replies_by_intent = dict(desk.by_intent)
            STATS.reply_actions = dict(desk.by_action)
            STATS.reply_duplicates = desk.duplicates
            STATS.feedback_waiting = desk.waiting_feedback()
            STATS.reply_graded, STATS.reply_correct = desk.graded, desk.correct
            if desk.model is not None and desk.learnt:
                STATS.reply_model_quality = desk.model.quality()
        learner = aggregates.learner
        if learner.updates or learner.pending:  # the models' merge
            STATS.pending_labels = len(learner.pending)
            STATS.model_update_seconds = learner.update_seconds
            STATS.model_updates = learner.updates
        return self._outputs(batch)

    def _outputs(self, batch: AnalyticsBatch) -> list[MergeOutput]:
        if batch.lift:
            watch_splits(batch.lift)
        tables, kafka = batch_outputs(batch)
        personas: dict[str, list] = {}
        n = len(self.shards)
        for item in batch.personas:
            personas.setdefault(shard_key(shard_of(item.recipient_hash, n)), []).append(item)
        result = MergeOutput(tables, kafka, list(personas.items()))
        return [result] if result.tables or result.kafka or result.personas else []

    def snapshot(self) -> bytes | None:
        if not self.snapshots:
            return None
        return pickle.dumps((self.gate, self.aggregates), protocol=pickle.HIGHEST_PROTOCOL)


class PersonaLogic(op.StatefulBatchLogic):
    """One recipient shard's personas, from the models' scores (in the models' order)."""

    def __init__(self, snapshots: bool, resume: bytes | None):
        self.snapshots = snapshots
        self.book: PersonaBook = PersonaBook() if resume is None else pickle.loads(resume)

    def on_batch(self, values: list[list]) -> tuple[list[tuple[str, list[tuple]]], bool]:
        profiles = [p for items in values for p in self.book.apply(items)]
        return ([(PROFILES, [tuple(p) for p in profiles])] if profiles else []), self.RETAIN

    def snapshot(self) -> bytes | None:
        if not self.snapshots:
            return None
        return pickle.dumps(self.book, protocol=pickle.HIGHEST_PROTOCOL)


def shard_gauges() -> tuple[int, int, int]:
    """(signals held, events held, events queued) over this process's shards."""
    values = list(_GAUGES.values())
    return tuple(sum(v[i] for v in values) for i in range(3))  # type: ignore[return-value]

