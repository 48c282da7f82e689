"""Mailgun webhooks (JSON) -> canonical v1 events.

Mailgun posts one event per request: `{"signature": {...}, "event-data": {...}}`.

===========================  ======================================================
Mailgun `event`              canonical `type`
===========================  ======================================================
accepted                     sent
delivered                    delivered
failed, severity permanent   bounce
failed, severity temporary   deferred (Mailgun retries)
failed, reason suppress-*    dropped (Mailgun refused: address on a suppression list)
rejected                     dropped (Mailgun refused the message at submission)
opened, clicked              open, click
unsubscribed                 unsubscribe
complained                   complaint
===========================  ======================================================

`message_id` is the Message-Id header (`message.headers.message-id`) without
angle brackets, as the Messages API returns it in `<…>`. `delivery-status`
gives `smtp_code` (only real SMTP codes: Mailgun's own 6xx stay in
`provider_code`), `smtp_status` (`enhanced-code`) and the diagnostic (the
remote server's `message`, then Mailgun's `description`); `bounce_kind` is
"severity/reason[/bounce-type]", e.g. "permanent/bounce". The sender comes
from the `sender` user variable (`v:sender`), else the webhook URL's
`?sender=`, else the item is rejected. `envelope.sender` is not used as a
fallback, because only delivery events carry it and opens and clicks of the
same message would then land on another sender; its domain is kept as
`sending_domain`.

The legacy form-encoded webhooks are not supported: configure the JSON ones.

>>> mapped = map_payload(b'{"signature": {}, "event-data": {"event": "opened", '
...     b'"id": "DACSsAdVSeGpLid7TN03WA", "timestamp": 1763719203.25, '
...     b'"recipient": "ann@example.com", "ip": "203.0.113.7", '
...     b'"message": {"headers": {"message-id": "20251121.1@mg.acme.example"}}, '
...     b'"user-variables": {"sender": "news.acme.example"}}}', {})
>>> ev = mapped.events[0]
>>> ev["type"], ev["sender"], ev["message_id"], ev["ip"]
('open', 'news.acme.example', '20251121.1@mg.acme.example', '203.0.113.7')
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Mapping
from typing import Any

import orjson

from schemas.providers.base import (
    STATUS_RE,
    Mapped,
    PayloadError,
    Rejected,
    SignatureError,
    as_object,
    as_tags,
    as_text,
    canonical,
    event_id,
    load_json,
    map_items,
    sender_of,
)

NAME = "mailgun"

#: A signature whose timestamp is further than this from now is refused (replay).
MAX_AGE_S = 300.0

_TYPES = {
    "accepted": "sent", "delivered": "delivered", "opened": "open", "clicked": "click",
    "unsubscribed": "unsubscribe", "complained": "complaint", "rejected": "dropped",
}
_FAILED_BY_SEVERITY = {"permanent": "bounce", "temporary": "deferred"}
#: Events that carry the reader's IP and user agent.
_READER_EVENTS = frozenset({"opened", "clicked", "unsubscribed", "complained"})


def map_payload(body: bytes, params: Mapping[str, str]) -> Mapped:
    """Map one webhook POST (one event)."""
    payload = load_json(NAME, body, " (legacy form-encoded webhooks are not supported)")
    if not isinstance(payload, dict) or not isinstance(payload.get("event-data"), dict):
        raise PayloadError('mailgun: expected {"signature": {...}, "event-data": {...}}')
    return map_items(NAME, [payload["event-data"]], _map_event, params)


def _map_event(data: dict[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
    name = data.get("event")
    status = as_object(data.get("delivery-status"))
    reason = as_text(data.get("reason"))
    severity = as_text(data.get("severity"))
    if name == "failed":
        kind = "dropped" if reason.startswith("suppress-") else _FAILED_BY_SEVERITY.get(severity)
        if kind is None:
            raise Rejected(f"failed event with unknown severity {severity!r}")
    else:
        kind = _TYPES.get(name) if isinstance(name, str) else None
        if kind is None:
            raise Rejected(f"unknown event {name!r}")
    recipient = as_text(data.get("recipient"))
    if not recipient:
        raise Rejected(f"{name} event without recipient")
    ts = data.get("timestamp")
    if ts is None or ts == "":
        raise Rejected(f"{name} event without timestamp")
    variables = as_object(data.get("user-variables"))
    sender = sender_of(variables.get("sender"), params, "a v:sender user variable to the message")
    message = as_object(data.get("message"))
    provider_message_id = as_text(as_object(message.get("headers")).get("message-id"))
    message_id = provider_message_id.strip().strip("<>")
    if not message_id:
        raise Rejected(f"{name} event without message.headers.message-id")

    code = status.get("code")
    is_smtp = isinstance(code, int) and not isinstance(code, bool) and 200 <= code < 600
    reject = as_object(data.get("reject"))  # "rejected" events say why here
    diagnostic = "; ".join(t for t in (
        as_text(status.get("message")), as_text(status.get("description")),
        as_text(reject.get("reason")), as_text(reject.get("description"))) if t.strip())
    enhanced = as_text(status.get("enhanced-code"))
    if not enhanced:
        found = STATUS_RE.search(diagnostic)
        enhanced = found.group(1) if found else ""
    failed = name == "failed"
    bounce_kind = "/".join(t for t in (severity, reason, as_text(status.get("bounce-type"))) if t)
    reader = name in _READER_EVENTS
    client = as_object(data.get("client-info"))
    envelope = as_object(data.get("envelope"))
    return canonical(
        NAME,
        type=kind,
        ts=ts,
        sender=sender,
        recipient=recipient,
        message_id=message_id,
        event_id=as_text(data.get("id")) or event_id(NAME, message_id, kind, ts, recipient),
        campaign_id=as_text(variables.get("campaign_id")),
        flow_id=as_text(variables.get("flow_id")),
        variant=as_text(variables.get("variant")),
        user_agent=as_text(client.get("user-agent")),
        ip=as_text(data.get("ip")) if reader else None,
        url=as_text(data.get("url")),
        smtp_code=code if is_smtp else None,
        smtp_status=enhanced,
        diagnostic=diagnostic,
        bounce_kind=bounce_kind if failed else None,
        provider_event=name,
        provider_message_id=provider_message_id,
        provider_code=code if code is not None and not is_smtp else None,
        attempt=status.get("attempt-no"),
        mx_host=as_text(status.get("mx-host")),
        client_type=as_text(client.get("client-type")),
        device_type=as_text(client.get("device-type")),
        country=as_text(as_object(data.get("geolocation")).get("country")),
        sending_ip=as_text(envelope.get("sending-ip")),
        sending_domain=as_text(envelope.get("sender")).rpartition("@")[2],
        tags=as_tags(data.get("tags")),
    )


# --- signature -----------------------------------------------------------------------------
def verify(headers: Mapping[str, str], body: bytes, config: Mapping[str, Any]) -> None:
    """Check Mailgun's HMAC-SHA256 of `timestamp + token` and the timestamp's age.

    `config["mailgun_signing_key"]` is the HTTP webhook signing key; without one,
    verification is off. Mailgun signs only the timestamp and token, not the event:
    the age check bounds how long a captured signature can be replayed.
    `config["now"]` overrides the clock (tests), `config["mailgun_max_age_s"]` the window.
    """
    key = config.get("mailgun_signing_key")
    if not key:
        return
    try:
        block = orjson.loads(body)["signature"]
        timestamp, token, signature = block["timestamp"], block["token"], block["signature"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        raise SignatureError("mailgun: no signature block {timestamp, token, signature}") from None
    if not all(isinstance(v, str | int) and not isinstance(v, bool)
               for v in (timestamp, token, signature)):
        raise SignatureError("mailgun: malformed signature block")
    expected = hmac.new(str(key).encode(), f"{timestamp}{token}".encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), str(signature).lower().encode()):
        raise SignatureError("mailgun: signature does not match")
    try:
        signed_at = float(timestamp)
    except ValueError:
        raise SignatureError("mailgun: malformed timestamp") from None
    now = config.get("now")
    now = time.time() if now is None else float(now)
    max_age = float(config.get("mailgun_max_age_s") or MAX_AGE_S)
    if not math.isfinite(signed_at) or abs(now - signed_at) > max_age:
        raise SignatureError(f"mailgun: stale timestamp ({now - signed_at:.0f} s old)")
