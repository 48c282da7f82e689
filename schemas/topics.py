"""Kafka topic names (DESIGN.md contracts) and the default event type per input topic."""

from __future__ import annotations

#: Input topics and the event types each one carries by default.
INPUT_TOPICS: dict[str, tuple[str, ...]] = {
    "email.deliveries": ("sent", "delivered", "deferred", "dropped"),
    "email.opens": ("open",),
    "email.clicks": ("click",),
    "email.bounces": ("bounce",),
    "email.unsubscribes": ("unsubscribe",),
    "email.complaints": ("complaint",),
    "email.conversions": ("conversion",),
    "email.replies": ("reply",),
    # Agents' feedback on routed replies (issue 17): about a reply, not a recipient.
    "email.reply_feedback": ("reply_feedback",),
    # Control groups (issue 19): the sending system deliberately did not send a message.
    "email.holdouts": ("holdout",),
}

#: The `type` a message on a topic gets when it does not name one itself.
#: `email.deliveries` carries several types, so it supplies no default.
DEFAULT_TYPE_BY_TOPIC: dict[str, str | None] = {
    topic: (types[0] if len(types) == 1 else None) for topic, types in INPUT_TOPICS.items()
}

#: Where a canonical event of each type is produced.
TOPIC_BY_TYPE: dict[str, str] = {
    event_type: topic for topic, types in INPUT_TOPICS.items() for event_type in types
}

#: Agents' feedback on routed replies (issue 17), parsed as type `reply_feedback`.
REPLY_FEEDBACK_TOPIC = "email.reply_feedback"
#: What an agent did with a routed reply.
FEEDBACK_ACTIONS: tuple[str, ...] = ("reassigned", "relabelled", "first_response", "resolved")

EVENT_TYPES: tuple[str, ...] = (
    "sent", "delivered", "deferred", "bounce", "dropped", "open", "click",
    "unsubscribe", "complaint", "conversion", "reply", "holdout",
)
#: The control groups a `holdout` event may name (absent: "flow").
HOLDOUT_GROUPS: tuple[str, ...] = ("flow", "global")

THROTTLE = "mailflow.throttle"
SUPPRESSIONS = "mailflow.suppressions"
SCORES = "mailflow.scores"
SEND_TIMES = "mailflow.send_times"
VARIANTS = "mailflow.variants"
DLQ = "mailflow.dlq"
#: Convergence propensities, key "{flow_id}|{recipient_hash}" (compacted: the latest).
FLOW_PROPENSITIES = "mailflow.flow_propensities"
#: A flow's cohort forecast fell below its trailing convergence (one record per alert).
FLOW_ALERTS = "mailflow.flow_alerts"
#: One routing decision per classified reply, key reply_id (issue 17).
ROUTES = "mailflow.routes"
#: Commands to the job (`schemas/control.py`), e.g. an erasure: read by the job, never an
#: event input. Not compacted: a replay from the beginning replays the erasures too.
CONTROL = "mailflow.control"

#: Topics the job creates besides its inputs: outputs (the compacted ones are keyed by
#: what they describe) and the control topic.
OUTPUT_TOPICS: dict[str, dict[str, str]] = {
    THROTTLE: {"cleanup.policy": "compact"},
    SUPPRESSIONS: {"cleanup.policy": "compact"},
    SCORES: {},
    SEND_TIMES: {"cleanup.policy": "compact"},
    VARIANTS: {"cleanup.policy": "compact"},
    FLOW_PROPENSITIES: {"cleanup.policy": "compact"},
    FLOW_ALERTS: {},
    # compacted: an erasure tombstones the person's routes (one record per reply anyway)
    ROUTES: {"cleanup.policy": "compact"},
    DLQ: {},
    CONTROL: {},
}
