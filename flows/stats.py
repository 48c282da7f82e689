"""Process-wide job counters, read by the admin endpoint and the demo.

Bytewax workers are threads of this process; each counter update is a dict
operation under the GIL, which is atomic enough for monotonic counters.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any


class JobStats:
    def __init__(self) -> None:
        self.started = time.time()
        self.events_by_type: Counter[str] = Counter()
        self.dead_by_reason: Counter[str] = Counter()
        self.dead_letters = 0
        self.rows_by_table: Counter[str] = Counter()
        self.inserts_by_table: Counter[str] = Counter()
        self.insert_seconds: Counter[str] = Counter()
        self.last_event_ts_ms = 0
        self.erasures = 0  # erasure commands applied (`mailflow erase`)
        self.erased_events = 0  # events refused because their recipient had been erased
        self.decisions_by_action: Counter[str] = Counter()
        self.late_signals = 0
        self.signals_held = 0
        self.events_held = 0
        self.late_events = 0
        self.pending_labels = 0
        self.gc_full_collections = 0
        self.gc_pause_max_s = 0.0  # longest full (generation 2) garbage collection
        self._gc_started = 0.0
        self.input_batches = 0
        self.input_messages = 0
        self.consumer_lag: dict[str, int] = {}  # "topic/partition" -> messages behind
        self.output_failures: Counter[tuple[str, str]] = Counter()  # (topic, error) -> lost
        self.offset_resets: Counter[str] = Counter()  # "topic/partition" -> resets
        self.analytics_seconds = 0.0
        self.analytics_events = 0
        self.analytics_queued = 0
        self.model_update_seconds = 0.0
        self.model_updates = 0
        # reply routing (the models' step): routed per intent, actions, feedback
        self.replies_by_intent: dict[str, int] = {}
        self.reply_actions: dict[str, int] = {}
        self.reply_duplicates = 0
        self.feedback_waiting = 0  # feedback about a reply not seen (yet)
        self.reply_graded = 0  # replies whose first route feedback has graded
        self.reply_correct = 0
        self.reply_model_quality: dict[str, dict[str, float]] = {}  # text / rules / decided
        # control-group lift (the merges): rows written, and the units whose split is broken
        self.lift_rows = 0
        self.lift_srm_alarms: dict[str, float] = {}  # "scope:key" -> srm p while alarmed
        self.ready = threading.Event()
        self.finished = threading.Event()

    def watch_gc(self, info_phase: str, info: dict[str, int]) -> None:
        """A `gc.callbacks` hook: times full collections."""
        if info["generation"] != 2:
            return
        if info_phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_full_collections += 1
            self.gc_pause_max_s = max(self.gc_pause_max_s,
                                      time.perf_counter() - self._gc_started)

    def record_events(self, types: Counter[str], max_ts_ms: int) -> None:
        self.events_by_type.update(types)
        if max_ts_ms > self.last_event_ts_ms:
            self.last_event_ts_ms = max_ts_ms

    def record_dead(self, reasons: list[str]) -> None:
        self.dead_letters += len(reasons)
        # Reasons quote the bad value; group by the kind of error for the counter.
        self.dead_by_reason.update(reason.split(":", 1)[0] for reason in reasons)

    def record_input(self, messages: int) -> None:
        self.input_batches += 1
        self.input_messages += messages

    def record_decisions(self, actions: Counter[str]) -> None:
        self.decisions_by_action.update(actions)

    def record_insert(self, table: str, rows: int, seconds: float) -> None:
        self.rows_by_table[table] += rows
        self.inserts_by_table[table] += 1
        self.insert_seconds[table] += seconds

    def record_output_failure(self, topic: str, error: str) -> None:
        """A Kafka output message the broker refused or never acknowledged."""
        self.output_failures[(topic, error)] += 1

    def record_offset_reset(self, partition: str) -> None:
        """An input partition whose resume offset was gone (out of retention)."""
        self.offset_resets[partition] += 1

    def snapshot(self) -> dict[str, Any]:
        events = dict(self.events_by_type)
        return {
            "uptime_s": round(time.time() - self.started, 3),
            "ready": self.ready.is_set(),
            "finished": self.finished.is_set(),
            "events_total": sum(events.values()),
            "events_by_type": events,
            "dead_letters": self.dead_letters,
            "dead_letters_by_reason": dict(self.dead_by_reason),
            "rows_written": dict(self.rows_by_table),
            "inserts": dict(self.inserts_by_table),
            "last_event_ts_ms": self.last_event_ts_ms,
            "decisions_by_action": dict(self.decisions_by_action),
            "late_signals": self.late_signals,
            "signals_held": self.signals_held,
            "events_held": self.events_held,
            "analytics_queued": self.analytics_queued,
            "late_events": self.late_events,
            "pending_labels": self.pending_labels,
            "erasures": self.erasures,
            "erased_events": self.erased_events,
            "gc_full_collections": self.gc_full_collections,
            "gc_pause_max_ms": round(self.gc_pause_max_s * 1000, 1),
            "consumer_lag": sum(self.consumer_lag.values()),
            "kafka_output_failures": sum(self.output_failures.values()),
            "offset_resets": sum(self.offset_resets.values()),
            "input_batches": self.input_batches,
            "model_update_us": round(1e6 * self.model_update_seconds / self.model_updates, 2)
            if self.model_updates else None,
            "model_update_seconds": round(self.model_update_seconds, 6),
            "replies_by_intent": dict(self.replies_by_intent),
            "reply_actions": dict(self.reply_actions),
            "reply_duplicates": self.reply_duplicates,
            "feedback_waiting": self.feedback_waiting,
            "reply_routing_accuracy": round(self.reply_correct / self.reply_graded, 4)
            if self.reply_graded else None,
            "reply_model_quality": self.reply_model_quality,
            "lift_rows": self.lift_rows,
            "lift_srm_alarms": dict(self.lift_srm_alarms),
        }

    def prometheus(self) -> str:
        """The counters in Prometheus text exposition format."""
        out = _series("mailflow_events_total", "counter", "Accepted input events by type.",
                      {f'type="{t}"': n for t, n in sorted(self.events_by_type.items())})
        out += _series("mailflow_dead_letters_total", "counter",
                       "Refused input messages by kind of error.",
                       {f'reason="{_label(r)}"': n for r, n in sorted(self.dead_by_reason.items())})
        out += _series("mailflow_rows_written_total", "counter",
                       "Rows inserted into ClickHouse by table.",
                       {f'table="{t}"': n for t, n in sorted(self.rows_by_table.items())})
        out += _series("mailflow_insert_seconds_total", "counter",
                       "Time spent in ClickHouse inserts.",
                       {f'table="{t}"': f"{v:.6f}" for t, v in sorted(self.insert_seconds.items())})
        out += _series("mailflow_decisions_total", "counter", "Throttle decisions by action.",
                       {f'action="{a}"': n for a, n in sorted(self.decisions_by_action.items())})
        out += _series("mailflow_late_signals_total", "counter",
                       "Signals older than the throttle window.", {"": self.late_signals})
        out += _series("mailflow_late_events_total", "counter",
                       "Events later than the allowed lateness (kept in events, left out of "
                       "metrics_1m).", {"": self.late_events})
        out += _series("mailflow_erasures_total", "counter",
                       "Erasure commands applied (mailflow erase).", {"": self.erasures})
        out += _series("mailflow_erased_events_total", "counter",
                       "Events of an erased recipient, stamped before the erasure, that "
                       "arrived after it and were dropped.", {"": self.erased_events})
        out += _series("mailflow_pending_labels", "gauge",
                       "Delivered messages waiting for their label.", {"": self.pending_labels})
        out += _series("mailflow_gc_full_collections_total", "counter",
                       "Full garbage collections (they pause the dataflow).",
                       {"": self.gc_full_collections})
        out += _series("mailflow_gc_pause_max_seconds", "gauge",
                       "Longest full garbage collection so far.", {"": self.gc_pause_max_s})
        out += _series("mailflow_inserts_total", "counter", "ClickHouse inserts by table.",
                       {f'table="{t}"': n for t, n in sorted(self.inserts_by_table.items())})
        out += _series("mailflow_input_batches_total", "counter",
                       "Consumer polls that returned messages.", {"": self.input_batches})
        out += _series("mailflow_input_messages_total", "counter",
                       "Messages read from the input topics (batch size = this / batches).",
                       {"": self.input_messages})
        out += _series("mailflow_consumer_lag", "gauge",
                       "Messages behind the end of each input partition (broker's view).",
                       {f'partition="{_label(p)}"': n
                        for p, n in sorted(self.consumer_lag.items())})
        out += _series("mailflow_kafka_output_failures_total", "counter",
                       "Kafka output messages refused or never acknowledged (the epoch fails).",
                       {f'topic="{_label(t)}",error="{_label(e)}"': n
                        for (t, e), n in sorted(self.output_failures.items())})
        out += _series("mailflow_offset_resets_total", "counter",
                       "Input partitions resumed from the earliest offset because the "
                       "snapshot's offset was no longer in the topic.",
                       {f'partition="{_label(p)}"': n
                        for p, n in sorted(self.offset_resets.items())})
        out += _series("mailflow_gate_held", "gauge", "Items waiting in the event-time gate.",
                       {'path="signals"': self.signals_held, 'path="events"': self.events_held})
        out += _series("mailflow_analytics_seconds_total", "counter",
                       "Time in the analytics and learning step.", {"": self.analytics_seconds})
        out += _series("mailflow_analytics_events_total", "counter",
                       "Events through the analytics and learning step.",
                       {"": self.analytics_events})
        out += _series("mailflow_analytics_queued", "gauge",
                       "Ordered events waiting for the analytics step (it works in slices).",
                       {"": self.analytics_queued})
        out += _series("mailflow_model_update_seconds_total", "counter",
                       "Time in model updates (learn_one of every model).",
                       {"": self.model_update_seconds})
        out += _series("mailflow_model_updates_total", "counter", "Model updates.",
                       {"": self.model_updates})
        out += _series("mailflow_replies_routed_total", "counter",
                       "Replies classified and routed, by intent.",
                       {f'intent="{_label(i)}"': n
                        for i, n in sorted(self.replies_by_intent.items())})
        out += _series("mailflow_reply_actions_total", "counter",
                       "What routing did: hold, suppress, review, route.",
                       {f'action="{_label(a)}"': n for a, n in sorted(self.reply_actions.items())})
        out += _series("mailflow_reply_duplicates_total", "counter",
                       "Replies seen again (same reply_id): routed once.",
                       {"": self.reply_duplicates})
        out += _series("mailflow_reply_feedback_waiting", "gauge",
                       "Helpdesk feedback about replies not seen (yet).",
                       {"": self.feedback_waiting})
        out += _series("mailflow_reply_feedback_graded_total", "counter",
                       "Routed replies graded by the helpdesk's first label, and how many "
                       "were right.", {'result="graded"': self.reply_graded,
                                       'result="right"': self.reply_correct})
        out += _series("mailflow_reply_model_accuracy", "gauge",
                       "Prequential accuracy on the helpdesk's labels: the text model alone, "
                       "the rules, and what was decided.",
                       {f'who="{_label(w)}"': q.get("accuracy", 0.0)
                        for w, q in sorted(self.reply_model_quality.items())})
        out += _series("mailflow_lift_rows_total", "counter",
                       "Control-group lift rows written (lift, lift_segments).",
                       {"": self.lift_rows})
        out += _series("mailflow_lift_srm_alarm", "gauge",
                       "1 per unit whose control-group split is broken (sample-ratio test "
                       "p < 0.001): its lift is meaningless until fixed.",
                       {f'unit="{_label(u)}"': 1 for u in sorted(self.lift_srm_alarms)}
                       or {"": 0})
        out += _series("mailflow_up", "gauge", "1 while the job runs.", {"": 1})
        return "\n".join(out) + "\n"


def _series(name: str, kind: str, help_text: str, values: dict[str, float | str]
            ) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in values.items():
        lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")
    return lines


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


STATS = JobStats()
