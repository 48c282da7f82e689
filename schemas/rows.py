"""Output records: the `mailflow.events` fact row built from an `Event`."""

from __future__ import annotations

import orjson

from schemas.events import Event

#: Column order of `mailflow.events` rows as written by the job.
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id", "ts", "type", "sender", "domain", "recipient_domain", "recipient_hash",
    "message_id", "campaign_id", "flow_id", "variant", "bounce_class", "smtp_code",
    "smtp_status", "diagnostic", "is_human", "user_agent", "ip", "url", "goal", "value",
    "currency", "attrs", "source_topic", "source_partition", "source_offset",
)

EventRow = tuple


def event_row(ev: Event, bounce_class: str, is_human: bool) -> EventRow:
    """One `mailflow.events` row; `ts` stays integer milliseconds (DateTime64(3))."""
    return (
        ev.event_id, ev.ts_ms, ev.type, ev.sender, ev.domain, ev.recipient_domain,
        ev.recipient_hash, ev.message_id, ev.campaign_id, ev.flow_id, ev.variant, bounce_class,
        ev.smtp_code, ev.smtp_status, ev.diagnostic, is_human, ev.user_agent, ev.ip, ev.url,
        ev.goal, ev.value, ev.currency, orjson.dumps(ev.attrs).decode() if ev.attrs else "",
        ev.topic, ev.partition, ev.offset,
    )
