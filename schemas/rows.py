"""Output records: ClickHouse rows and Kafka values built from events and decisions."""

from __future__ import annotations

import math
import time
from datetime import date, timedelta

import orjson

from operators import bounces
from operators.attribution import Credit
from operators.bounces import BounceVerdict
from operators.convergence import ConvergenceRow
from operators.engagement import Interaction
from operators.forecast import CohortOutcome, FlowAlert, ForecastQuality, ForecastRow
from operators.learning import ModelMetricRow, Score
from operators.lift import LiftRow
from operators.lift_stats import estimate
from operators.metrics import MinuteRow
from operators.propensity import PropensityRow
from operators.reply_desk import FeedbackRow, ReplyRead, ReplySuppression, Route
from operators.send_time import SendTime
from operators.throttle import Decision
from operators.variants import Allocation
from schemas.events import Event
from schemas.hashing import truncate_ip

#: Column order of `mailflow.events` rows as written by the job.
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id", "ts", "type", "sender", "domain", "recipient_domain", "recipient_hash",
    "message_id", "campaign_id", "flow_id", "variant", "bounce_class", "bounce_source",
    "bounce_confidence", "smtp_code",
    "smtp_status", "diagnostic", "is_human", "machine_reason", "latency_s", "attributed_flows",
    "user_agent", "ip", "url", "goal", "value",
    "currency", "attrs", "source_topic", "source_partition", "source_offset",
)

EventRow = tuple


def event_row(ev: Event, bounce: BounceVerdict | None, interaction: Interaction,
              attributed_flows: tuple[str, ...] = ()) -> EventRow:
    """One `mailflow.events` row; `ts` stays integer milliseconds (DateTime64(3))."""
    cls, confidence, source = bounce if bounce is not None else ("", 0.0, "")
    return (
        ev.event_id, ev.ts_ms, ev.type, ev.sender, ev.domain, ev.recipient_domain,
        ev.recipient_hash, ev.message_id, ev.campaign_id, ev.flow_id, ev.variant, cls, source,
        confidence, ev.smtp_code, ev.smtp_status, ev.diagnostic, interaction.is_human,
        interaction.reason, interaction.latency_s, list(attributed_flows), ev.user_agent,
        truncate_ip(ev.ip),  # at rest only the network: the full IP was for classification
        ev.url, ev.goal, ev.value, ev.currency, _attrs_json(ev.attrs) if ev.attrs else "",
        ev.topic, ev.partition, ev.offset,
    )


def iso_ms(ts_ms: int) -> str:
    """RFC 3339 UTC with milliseconds, as on the wire: 2026-11-21T10:00:03.120Z."""
    seconds, millis = divmod(ts_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


DECISION_COLUMNS: tuple[str, ...] = (
    "sender", "domain", "seq", "action", "rate_factor", "until", "reason", "evidence",
    "event_ts", "decided_at",
)


def decision_record(d: Decision, decided_at_ms: int) -> dict:
    """The throttle decision as published on `mailflow.throttle` (DESIGN.md)."""
    return {
        "sender": d.sender, "domain": d.domain, "action": d.action,
        "rate_factor": d.rate_factor, "until": iso_ms(d.until_ms) if d.until_ms else None,
        "reason": d.reason, "evidence": d.evidence, "event_ts": iso_ms(d.event_ts_ms),
        "decided_at": iso_ms(decided_at_ms), "seq": d.seq,
    }


def decision_row(d: Decision, decided_at_ms: int) -> tuple:
    return (d.sender, d.domain, d.seq, d.action, d.rate_factor,
            d.until_ms or None, d.reason, orjson.dumps(d.evidence).decode(), d.event_ts_ms,
            decided_at_ms)


def decision_key(d: Decision) -> bytes:
    return f"{d.sender}|{d.domain}".encode()


SUPPRESSION_COLUMNS: tuple[str, ...] = ("recipient_hash", "reason", "ts", "sender", "domain",
                                        "event_id", "until")

def suppression_reason(ev: Event, bounce: BounceVerdict | None) -> str | None:
    """Why `ev` suppresses its recipient for good (`operators.bounces.suppression_reason`)."""
    return bounces.suppression_reason(ev.type, bounce)


def suppression_record(ev: Event, reason: str) -> dict:
    return {"recipient_hash": ev.recipient_hash, "reason": reason, "ts": iso_ms(ev.ts_ms)}


def suppression_row(ev: Event, reason: str) -> tuple:
    return (ev.recipient_hash, reason, ev.ts_ms, ev.sender, ev.domain, ev.event_id, None)


def _attrs_json(attrs: dict) -> str:
    """An event's other fields as JSON; a reply's reading only as its verdict's summary
    (its text features and any offered contact are never stored)."""
    read = attrs.get("reply")
    if isinstance(read, ReplyRead):
        v = read.verdict
        attrs = {**attrs, "reply": {"rule_intent": v.intent, "confidence": round(v.confidence, 4),
                                    "auto": v.auto, "language": v.language}}
    return orjson.dumps(attrs).decode()


def reply_suppression_record(s: ReplySuppression) -> dict:
    record = {"recipient_hash": s.recipient_hash, "reason": s.reason, "ts": iso_ms(s.ts_ms)}
    if s.until:
        record["until"] = s.until
    return record


def reply_suppression_row(s: ReplySuppression) -> tuple:
    return (s.recipient_hash, s.reason, s.ts_ms, s.sender, s.domain, s.reply_id,
            date.fromisoformat(s.until) if s.until else None)


def route_record(r: Route) -> dict:
    """One `mailflow.routes` value (the only place an offered contact appears raw)."""
    return {
        "reply_id": r.reply_id, "message_id": r.message_id or None, "sender": r.sender,
        "recipient_hash": r.recipient_hash, "campaign_id": r.campaign_id or None,
        "flow_id": r.flow_id or None, "intent": r.intent, "confidence": r.confidence,
        "scores": r.scores, "queue": r.queue or None, "priority": r.priority, "auto": r.auto,
        "sentiment": r.sentiment, "urgent": r.urgent, "language": r.language,
        "until": r.until or None, "actions": list(r.actions), "explanation": r.explanation,
        "model": r.model, "rule_intent": r.rule_intent,
        "new_contact": r.new_contact or None, "new_contact_hash": r.new_contact_hash or None,
        "references": list(r.references), "event_ts": iso_ms(r.ts_ms),
    }


REPLY_COLUMNS: tuple[str, ...] = (
    "reply_id", "ts", "message_id", "sender", "domain", "recipient_hash", "campaign_id",
    "flow_id", "intent", "confidence", "queue", "priority", "auto", "sentiment", "urgent",
    "language", "return_date", "actions", "explanation", "model", "rule_intent",
    "new_contact_hash",
)


def reply_row(r: Route) -> tuple:
    """One `mailflow.replies` row: the verdict and route, never text or an address."""
    return (r.reply_id, r.ts_ms, r.message_id, r.sender, r.domain, r.recipient_hash,
            r.campaign_id, r.flow_id, r.intent, r.confidence, r.queue, r.priority, r.auto,
            r.sentiment, r.urgent, r.language,
            date.fromisoformat(r.until) if r.until else None, list(r.actions), r.explanation,
            r.model, r.rule_intent, r.new_contact_hash)


FEEDBACK_COLUMNS: tuple[str, ...] = (
    "reply_id", "ts", "action", "queue", "intent", "routed_queue", "routed_intent",
    "reply_ts", "latency_s",
)


def feedback_row(f: FeedbackRow) -> tuple:
    return (f.reply_id, f.ts_ms, f.action, f.queue, f.intent, f.routed_queue, f.routed_intent,
            f.reply_ts_ms, f.latency_s)


ATTRIBUTION_COLUMNS: tuple[str, ...] = (
    "conversion_id", "ts", "sender", "recipient_hash", "goal", "value", "currency", "model",
    "message_id", "campaign_id", "flow_id", "touch_ts", "credit", "credited_value",
)


def attribution_row(ev: Event, c: Credit) -> tuple:
    return (ev.event_id, ev.ts_ms, ev.sender, ev.recipient_hash, ev.goal, ev.value,
            ev.currency, c.model, c.touch.message_id, c.touch.campaign_id, c.touch.flow_id,
            c.touch.ts_ms, c.credit, round(c.credit * ev.value, 6))


METRICS_COLUMNS: tuple[str, ...] = (
    "minute", "sender", "domain", "campaign_id", "flow_id", *MinuteRow._fields[5:],
)


def metrics_row(r: MinuteRow) -> tuple:
    return (r.minute_ms // 1000, *r[1:])


CONVERGENCE_COLUMNS: tuple[str, ...] = ConvergenceRow._fields[:2] + ("as_of",) + \
    ConvergenceRow._fields[3:]


def convergence_row(r: ConvergenceRow) -> tuple:
    return (r.flow_id, r.window, r.as_of_ms // 1000, *r[3:])


SCORE_COLUMNS = ("message_id", "ts", "sender", "domain", "model", "score", "conversion",
                 "unsubscribe_risk")


def score_row(sc: Score) -> tuple:
    return (sc.message_id, sc.event_ts_ms, sc.sender, sc.domain, sc.model, sc.score,
            sc.conversion, sc.unsubscribe_risk)


def score_record(sc: Score) -> dict:
    """`mailflow.scores` (DESIGN.md), plus the conversion and unsubscribe-risk scores."""
    return {"message_id": sc.message_id, "sender": sc.sender, "domain": sc.domain,
            "model": sc.model, "score": sc.score, "event_ts": iso_ms(sc.event_ts_ms),
            "conversion": sc.conversion, "unsubscribe_risk": sc.unsubscribe_risk}


MODEL_METRIC_COLUMNS = ("model", "minute", "n", "n_window", "roc_auc", "log_loss",
                        "positive_rate", "ece")


def model_metric_row(r: ModelMetricRow) -> tuple:
    return (r.model, r.minute_ms // 1000, r.n, r.n_window, r.roc_auc, r.log_loss,
            r.positive_rate, r.ece)


FLOW_PROPENSITY_COLUMNS = ("flow_id", "recipient_hash", "score", "as_of", "kind", "cohort_day",
                           "unsubscribe_risk", "advice")


def flow_propensity_row(r: PropensityRow) -> tuple:
    return (r.flow_id, r.recipient_hash, r.score, r.as_of_ms, r.kind, day_of(r.cohort_day),
            r.unsubscribe_risk, r.advice)


def flow_propensity_record(r: PropensityRow) -> dict:
    """`mailflow.flow_propensities` (DESIGN.md), plus what re-scored it, the cohort, the
    unsubscribe risk of the flow's latest mail and the advice ("stop_mailing" or "")."""
    return {"flow_id": r.flow_id, "recipient_hash": r.recipient_hash, "score": r.score,
            "as_of": iso_ms(r.as_of_ms), "kind": r.kind,
            "cohort_day": iso_day(r.cohort_day), "unsubscribe_risk": r.unsubscribe_risk,
            "advice": r.advice}


FORECAST_COLUMNS = ("flow_id", "cohort_day", "as_of", "entered", "converged",
                    "expected_converged", "forecast_score", "lo80", "hi80", "lo95", "hi95")


def forecast_row(r: ForecastRow) -> tuple:
    return (r.flow_id, day_of(r.cohort_day), r.as_of_ms // 1000, r.entered, r.converged,
            r.expected_converged, r.forecast_score, r.lo80, r.hi80, r.lo95, r.hi95)


COHORT_OUTCOME_COLUMNS = ("flow_id", "cohort_day", "entered", "converged", "score",
                          "window_days", "closed_at")


def cohort_outcome_row(r: CohortOutcome) -> tuple:
    return (r.flow_id, day_of(r.cohort_day), r.entered, r.converged, r.score, r.window_days,
            r.closed_ms // 1000)


FLOW_ALERT_COLUMNS = ("flow_id", "cohort_day", "as_of", "forecast_score", "hi80",
                      "trailing_score", "margin", "detail")


def flow_alert_row(r: FlowAlert) -> tuple:
    return (r.flow_id, day_of(r.cohort_day), r.as_of_ms // 1000, r.forecast_score, r.hi80,
            r.trailing_score, r.margin, r.detail)


def flow_alert_record(r: FlowAlert) -> dict:
    """`mailflow.flow_alerts`: a cohort forecast, at 80% confidence, below its flow's
    trailing convergence by more than the margin."""
    return {"flow_id": r.flow_id, "cohort_day": iso_day(r.cohort_day),
            "as_of": iso_ms(r.as_of_ms), "forecast_score": r.forecast_score, "hi80": r.hi80,
            "trailing_score": r.trailing_score, "margin": r.margin, "detail": r.detail}


FORECAST_QUALITY_COLUMNS = ("flow_id", "cohort_day", "horizon_days", "forecast_score",
                            "realised", "abs_error", "rel_error", "in80", "in95", "entered",
                            "baseline_score", "baseline_abs_error", "baseline_rel_error")


def forecast_quality_row(r: ForecastQuality) -> tuple:
    return (r.flow_id, day_of(r.cohort_day), *r[2:])


def iso_day(day: int) -> str:
    """UTC day number (days since 1970-01-01) as YYYY-MM-DD.

    >>> iso_day(20_424)
    '2025-12-02'
    """
    return day_of(day).isoformat()


def day_of(day: int) -> date:
    """UTC day number as a `date` (what a `Date` column takes, in JSON and Native inserts)."""
    return _EPOCH_DAY + timedelta(days=day)


_EPOCH_DAY = date(1970, 1, 1)


MODEL_EVENT_COLUMNS = ("ts", "model", "event", "detail")


def send_time_record(st: SendTime) -> dict:
    """`mailflow.send_times` (DESIGN.md)."""
    return {"recipient_hash": st.recipient_hash, "best_hour_of_week": st.best_hour_of_week,
            "confidence": round(st.confidence, 4), "as_of": iso_ms(st.as_of_ms)}


SEND_TIME_COLUMNS = ("recipient_hash", "best_hour_of_week", "confidence", "n", "as_of")


def send_time_row(st: SendTime) -> tuple:
    return (st.recipient_hash, st.best_hour_of_week, st.confidence, st.n, st.as_of_ms)


PROFILE_COLUMNS = ("recipient_hash", "persona", "engagement_score", "conversion_score", "as_of")


def allocation_record(a: Allocation) -> dict:
    """`mailflow.variants` (DESIGN.md)."""
    return {"campaign_id": a.campaign_id, "allocation": a.allocation, "as_of": iso_ms(a.as_of_ms)}


ALLOCATION_COLUMNS = ("campaign_id", "as_of", "variant", "share", "pulls", "successes")


def allocation_rows(a: Allocation) -> list[tuple]:
    return [(a.campaign_id, a.as_of_ms, v, share, a.pulls.get(v, 0), a.successes.get(v, 0))
            for v, share in sorted(a.allocation.items())]


LIFT_MEASURES = (
    "treated_n", "treated_conv", "control_n", "control_conv", "treated_rate", "control_rate",
    "abs_lift", "abs_lo95", "abs_hi95", "av_lo95", "av_hi95", "rel_lift",
    "incremental_conversions", "treated_value", "control_value", "treated_value_per",
    "control_value_per", "value_lift", "value_lo95", "value_hi95", "incremental_value",
    "srm_p", "srm_alarm", "expected_control_share", "treated_assigned", "control_assigned",
    "significant", "crossovers", "partial", "treated_unsub_rate", "treated_complaint_rate",
    "control_unsub_rate", "control_complaint_rate", "treated_click_rate", "first_assigned")
LIFT_COLUMNS = ("flow_id", "window_days", "as_of", "goal", *LIFT_MEASURES)
LIFT_SEGMENT_COLUMNS = ("scope", "segment", "window_days", "as_of", "goal", *LIFT_MEASURES)


def _lift_measures(r: LiftRow) -> tuple:
    t, c = r.treated, r.control
    e = estimate(t, c, r.treated_assigned, r.control_assigned, r.expected_control_share)
    e = e._replace(**{name: None for name, v in e._asdict().items()
                      if type(v) is float and not math.isfinite(v)})  # NULL: no estimate
    return (t.n, t.conv, c.n, c.conv, e.treated_rate, e.control_rate, e.abs_lift, e.abs_lo95,
            e.abs_hi95, e.av_lo95, e.av_hi95, e.rel_lift, e.incremental_conversions, t.value,
            c.value, e.treated_value_per, e.control_value_per, e.value_lift, e.value_lo95,
            e.value_hi95, e.incremental_value, e.srm_p, int(e.srm_alarm),
            r.expected_control_share, r.treated_assigned, r.control_assigned,
            int(e.significant), r.crossovers, int(r.partial), e.treated_unsub_rate,
            e.treated_complaint_rate, e.control_unsub_rate, e.control_complaint_rate,
            e.treated_click_rate, r.first_assigned_ms)


def lift_row(r: LiftRow) -> tuple:
    """`lift`: a flow (key) or all marketing ("")."""
    return (r.key, r.window_days, r.as_of_ms, r.goal, *_lift_measures(r))


def lift_segment_row(r: LiftRow) -> tuple:
    """`lift_segments`: a campaign or a policy experiment."""
    return (r.scope, r.key, r.window_days, r.as_of_ms, r.goal, *_lift_measures(r))


#: Column order per table, for the generic ClickHouse sink.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "mailflow.events": EVENT_COLUMNS,
    "mailflow.throttle_decisions": DECISION_COLUMNS,
    "mailflow.suppressions": SUPPRESSION_COLUMNS,
    "mailflow.attribution": ATTRIBUTION_COLUMNS,
    "mailflow.metrics_1m": METRICS_COLUMNS,
    "mailflow.convergence": CONVERGENCE_COLUMNS,
    "mailflow.scores": SCORE_COLUMNS,
    "mailflow.model_metrics": MODEL_METRIC_COLUMNS,
    "mailflow.model_events": MODEL_EVENT_COLUMNS,
    "mailflow.send_times": SEND_TIME_COLUMNS,
    "mailflow.recipient_profiles": PROFILE_COLUMNS,
    "mailflow.variant_allocations": ALLOCATION_COLUMNS,
    "mailflow.flow_propensities": FLOW_PROPENSITY_COLUMNS,
    "mailflow.convergence_forecast": FORECAST_COLUMNS,
    "mailflow.cohort_outcomes": COHORT_OUTCOME_COLUMNS,
    "mailflow.flow_alerts": FLOW_ALERT_COLUMNS,
    "mailflow.forecast_quality": FORECAST_QUALITY_COLUMNS,
    "mailflow.replies": REPLY_COLUMNS,
    "mailflow.reply_feedback": FEEDBACK_COLUMNS,
    "mailflow.lift": LIFT_COLUMNS,
    "mailflow.lift_segments": LIFT_SEGMENT_COLUMNS,
}
