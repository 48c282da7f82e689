"""The event record the core consumes: one validated, pseudonymised event.

`schemas.events.EventParser` builds it from wire format v1 (DESIGN.md) and
re-exports it, so `from schemas.events import Event` works too. It lives here,
in the bottom layer, because everything in `operators/` takes it and
`operators/` imports nothing from the layers above.

Recovery snapshots pickle it by module path: snapshots written before the move
name `schemas.events.Event`, which still resolves (to this class); new ones name
`operators.event.Event`.

>>> ev = Event("e-1", 1_795_000_000_000, "delivered", "news.acme.example", "h", "icloud.com",
...            "icloud.com", "m-1", "", "", "", "", "", "", 0, "", "", "", "", 0.0, "", {},
...            "email.deliveries", 0, 7)
>>> ev.type, ev.domain, ev.offset
('delivered', 'icloud.com', 7)
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Event(NamedTuple):
    """One validated, pseudonymised event. Times are epoch milliseconds (UTC)."""

    event_id: str
    ts_ms: int
    type: str
    sender: str
    recipient_hash: str
    recipient_domain: str
    domain: str  # mailbox-provider key (DESIGN.md)
    message_id: str
    campaign_id: str
    flow_id: str
    variant: str
    user_agent: str
    ip: str
    url: str
    smtp_code: int  # 0 when absent
    smtp_status: str
    diagnostic: str
    bounce_kind: str
    goal: str
    value: float
    currency: str
    attrs: dict[str, Any]
    topic: str
    partition: int
    offset: int
