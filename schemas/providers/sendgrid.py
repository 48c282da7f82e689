"""SendGrid Event Webhook -> canonical v1 events.

SendGrid posts a JSON array of events, one object per recipient and event:

=====================  =================================================
SendGrid `event`       canonical `type`
=====================  =================================================
processed              sent
delivered              delivered
deferred               deferred
bounce                 bounce (`type` "bounce" or "blocked" -> `bounce_kind`)
dropped                dropped (SendGrid refused to send: suppressed or invalid
                       address; `mailflow ingest` keeps one for an invalid address
                       hashed, with `recipient_domain` "invalid")
open, click            open, click
spamreport             complaint
unsubscribe            unsubscribe
group_unsubscribe      unsubscribe (`asm_group_id` names the group)
group_resubscribe      rejected: a resubscribe is no event type
account_status_change  rejected: an account event, about no message
=====================  =================================================

`message_id` is the X-Message-Id the Mail Send API returned: `sg_message_id`
up to its first "." (the rest names SendGrid's filter host and recipient
index). The full value stays in `provider_message_id`. Custom args arrive as
top-level keys; `sender`, `campaign_id`, `flow_id` and `variant` are read from
them. Without a `sender` custom arg the webhook URL's `?sender=` names the
sending identity, else the item is rejected.

>>> mapped = map_payload(b'[{"email": "ann@example.com", "timestamp": 1763719203, '
...     b'"event": "delivered", "sg_event_id": "rWVYmVk90MjZJ9iohOBa3w", '
...     b'"sg_message_id": "ZRdmVUc0QUiyzjWeuq6ZrQ.recvd-5f8d7b4c6-abcde-1-6920A523-9.0", '
...     b'"response": "250 2.0.0 OK"}]', {"sender": "news.acme.example"})
>>> ev = mapped.events[0]
>>> ev["type"], ev["message_id"], ev["smtp_code"], ev["smtp_status"]
('delivered', 'ZRdmVUc0QUiyzjWeuq6ZrQ', 250, '2.0.0')
"""

from __future__ import annotations

import base64
import math
import re
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from schemas.providers.base import (
    STATUS_RE,
    Mapped,
    PayloadError,
    Rejected,
    SignatureError,
    as_int,
    as_tags,
    as_text,
    canonical,
    event_id,
    header,
    load_json,
    map_items,
    sender_of,
)

NAME = "sendgrid"

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
#: A signed request older (or newer) than this is refused as a possible replay.
MAX_AGE_S = 300.0

_TYPES = {
    "processed": "sent", "delivered": "delivered", "deferred": "deferred", "bounce": "bounce",
    "dropped": "dropped", "open": "open", "click": "click", "spamreport": "complaint",
    "unsubscribe": "unsubscribe", "group_unsubscribe": "unsubscribe",
}
_NOT_EVENTS = {
    "group_resubscribe": "resubscribe to an unsubscribe group: not an event type",
    # the Event Webhook also carries account events (e.g. a compliance suspension)
    "account_status_change": "an account event (SendGrid changed the account's status), "
                             "not about a message: see the SendGrid console",
}
#: SendGrid's `ip` is the sending IP on delivery events and the reader's IP on these.
_READER_EVENTS = frozenset({"open", "click", "unsubscribe", "group_unsubscribe", "spamreport"})

_SMTP_CODE = re.compile(r"^\s*(?:smtp;\s*)?([245]\d\d)(?=[\s\-]|$)", re.IGNORECASE)


def map_payload(body: bytes, params: Mapping[str, str]) -> Mapped:
    """Map one Event Webhook POST (a JSON array of events)."""
    items = load_json(NAME, body)
    if not isinstance(items, list):
        raise PayloadError("sendgrid: the Event Webhook posts a JSON array of events")
    return map_items(NAME, items, _map_event, params)


def _map_event(item: Any, params: Mapping[str, str]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise Rejected("event is not a JSON object")
    name = item.get("event")
    if name in _NOT_EVENTS:
        raise Rejected(f"{name}: {_NOT_EVENTS[name]}")
    kind = _TYPES.get(name) if isinstance(name, str) else None
    if kind is None:
        raise Rejected(f"unknown event {name!r}")
    recipient = as_text(item.get("email"))
    if not recipient:
        raise Rejected(f"{name} event without email (recipient)")
    ts = item.get("timestamp")
    if ts is None or ts == "":
        raise Rejected(f"{name} event without timestamp")
    sender = sender_of(item.get("sender"), params, "a `sender` custom arg to the message")

    provider_message_id = as_text(item.get("sg_message_id"))
    smtp_id = as_text(item.get("smtp-id")).strip().strip("<>")
    # The X-Message-Id; the SMTP Message-ID only when SendGrid sent no sg_message_id.
    message_id = provider_message_id.split(".", 1)[0] or smtp_id
    if not message_id:
        raise Rejected(f"{name} event without sg_message_id or smtp-id")

    diagnostic = as_text(item.get("reason")) or as_text(item.get("response"))
    reader = name in _READER_EVENTS
    campaign_id = (as_text(item.get("campaign_id")) or as_text(item.get("singlesend_id"))
                   or as_text(item.get("marketing_campaign_id")))
    return canonical(
        NAME,
        type=kind,
        ts=ts,
        sender=sender,
        recipient=recipient,
        message_id=message_id,
        event_id=(as_text(item.get("sg_event_id"))
                  or event_id(NAME, message_id, kind, ts, recipient)),
        campaign_id=campaign_id,
        flow_id=as_text(item.get("flow_id")),
        variant=as_text(item.get("variant")),
        user_agent=as_text(item.get("useragent")),
        ip=as_text(item.get("ip")) if reader else None,
        url=as_text(item.get("url")),
        smtp_code=smtp_code_of(diagnostic),
        smtp_status=smtp_status_of(as_text(item.get("status")), diagnostic),
        diagnostic=diagnostic,
        bounce_kind=as_text(item.get("type")) if name == "bounce" else None,
        provider_event=name,
        provider_message_id=provider_message_id,
        smtp_id=smtp_id,
        sending_ip=None if reader else as_text(item.get("ip")),
        bounce_classification=as_text(item.get("bounce_classification")),
        attempt=as_int(item.get("attempt")),
        asm_group_id=as_int(item.get("asm_group_id")),
        machine_open=item.get("sg_machine_open") if name == "open" else None,
        tags=as_tags(item.get("category")),
    )


def smtp_code_of(text: str) -> int | None:
    """The SMTP reply code a diagnostic starts with ("550 5.1.1 …", "smtp;421-4.7.0 …").

    >>> smtp_code_of("550 5.1.1 user unknown"), smtp_code_of("Bounced Address")
    (550, None)
    """
    found = _SMTP_CODE.match(text)
    return int(found.group(1)) if found else None


def smtp_status_of(status: str, text: str) -> str:
    """The enhanced status code: SendGrid's `status`, unless it is only the generic
    "x.0.0" and the reply names a specific one (the classifier reads the code first).

    >>> smtp_status_of("5.0.0", "550 5.7.1 blocked"), smtp_status_of("5.1.1", "")
    ('5.7.1', '5.1.1')
    """
    found = STATUS_RE.search(text)
    if found and (not status or status.endswith(".0.0")):
        return found.group(1)
    return status


# --- Signed Event Webhook ------------------------------------------------------------------
def verify(headers: Mapping[str, str], body: bytes, config: Mapping[str, Any]) -> None:
    """Check SendGrid's ECDSA (P-256, SHA-256) signature over `timestamp + body`.

    `config["sendgrid_public_key"]` is the verification key as SendGrid shows it
    (base64 DER SubjectPublicKeyInfo; PEM works too). Without one, verification is
    off and every request passes. `config["now"]` overrides the clock (tests) and
    `config["sendgrid_max_age_s"]` the replay window.
    """
    key_text = config.get("sendgrid_public_key")
    if not key_text:
        return
    signature = header(headers, SIGNATURE_HEADER)
    timestamp = header(headers, TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise SignatureError(f"sendgrid: missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}")
    try:
        signed_at = float(timestamp)
        der = base64.b64decode(signature, validate=True)
    except ValueError:
        raise SignatureError("sendgrid: malformed signature or timestamp header") from None
    try:
        _public_key(str(key_text)).verify(der, timestamp.encode() + body,
                                          ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("sendgrid: signature does not match the body") from None
    now = config.get("now")
    now = time.time() if now is None else float(now)
    max_age = float(config.get("sendgrid_max_age_s") or MAX_AGE_S)
    if not math.isfinite(signed_at) or abs(now - signed_at) > max_age:
        raise SignatureError(f"sendgrid: stale timestamp ({now - signed_at:.0f} s old)")


@lru_cache(maxsize=8)
def _public_key(key_text: str) -> ec.EllipticCurvePublicKey:
    """Load the key once; a key that is no EC public key is a configuration error."""
    text = key_text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except ValueError as exc:
        raise ValueError(f"sendgrid_public_key is not a base64 DER or PEM public key: "
                         f"{exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("sendgrid_public_key is not an elliptic-curve (ECDSA) key")
    return key
