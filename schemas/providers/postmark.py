"""Postmark webhooks -> canonical v1 events.

Postmark posts one JSON object per request; `RecordType` says what it is:

==================  ================================================================
RecordType          canonical `type`
==================  ================================================================
Delivery            delivered
Bounce              by `Type`, see below (`Type` -> `bounce_kind`)
SpamComplaint       complaint
Open, Click         open, click
SubscriptionChange  unsubscribe when the recipient suppressed sending; see below
==================  ================================================================

Bounce `Type`s. Postmark keeps one bounce record per failed message; only
`Transient` ("message delayed") says the message may still arrive:

- HardBounce, BadEmailAddress, SoftBounce, DnsError, Blocked, SpamNotification,
  VirusNotification, DMARCPolicy, Unknown -> `bounce`. The bounce class comes from
  the SMTP reply in `Details` (then from `Type`): a SoftBounce is a failed
  message whose address stays active, so it is classified "soft", not dropped
  from the bounce count.
- Transient -> `deferred`.
- SMTPApiError, TemplateRenderingFailed -> `dropped` (Postmark never sent it).
- AutoResponder -> `reply` marked `auto_submitted: "auto-replied"` (RFC 3834), so
  the engagement tracker does not count an out-of-office answer as a reader.
- Unsubscribe (an emailed "remove me") -> `unsubscribe`; SpamComplaint -> `complaint`.
- Subscribe, AddressChange, ChallengeVerification, OpenRelayTest, Unconfirmed,
  ManuallyDeactivated, InboundError -> rejected: none is a delivery or engagement
  event.

SubscriptionChange: `SuppressSending: false` is a resubscribe (rejected, no
event type). A suppression because of a HardBounce or SpamComplaint is rejected
too: its Bounce/SpamComplaint webhook already reported it, and counting it again
would double the negative signal. A suppression the sender made (`Origin`
Customer or Admin) is no recipient's act and is rejected; what remains (the
recipient used the unsubscribe link) becomes `unsubscribe`.

`Details` (the SMTP reply, "smtp;550 5.1.1 …") without its "smtp;" is the
diagnostic; Postmark's generic `Description` of the bounce type is kept apart
(`description`) so that it does not pass for the server's words. The sender comes from the
`sender` metadata field, else the webhook URL's `?sender=`, else the item is
rejected. Postmark does not sign webhooks: protect the URL with basic auth
(`verify`).

>>> mapped = map_payload(b'{"RecordType": "Delivery", "MessageID": "883953f4-6105-42a2-a16a-'
...     b'77a8eac79483", "Recipient": "ann@example.com", "DeliveredAt": '
...     b'"2025-11-21T10:00:03.1200000Z", "Details": "smtp;250 2.0.0 OK", '
...     b'"Metadata": {"sender": "news.acme.example"}}', {})
>>> ev = mapped.events[0]
>>> ev["type"], ev["ts"], ev["smtp_code"], ev["diagnostic"], ev["message_id"][:8]
('delivered', '2025-11-21T10:00:03.1200000Z', 250, '250 2.0.0 OK', '883953f4')
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from typing import Any

from schemas.providers.base import (
    STATUS_RE,
    Mapped,
    PayloadError,
    Rejected,
    SignatureError,
    as_object,
    as_text,
    canonical,
    event_id,
    header,
    load_json,
    map_items,
    sender_of,
)

NAME = "postmark"

_BOUNCE_TYPES = {
    "HardBounce": "bounce", "BadEmailAddress": "bounce", "SoftBounce": "bounce",
    "DnsError": "bounce", "Blocked": "bounce", "SpamNotification": "bounce",
    "VirusNotification": "bounce", "DMARCPolicy": "bounce", "Unknown": "bounce",
    "Transient": "deferred",
    "SMTPApiError": "dropped", "TemplateRenderingFailed": "dropped",
    "AutoResponder": "reply",
    "Unsubscribe": "unsubscribe",
    "SpamComplaint": "complaint",
}
_NOT_EVENTS = {
    "Subscribe": "subscribe request: not an event type",
    "AddressChange": "address-change notice: not an event type",
    "ChallengeVerification": "challenge-response verification request: not an event type",
    "OpenRelayTest": "open-relay test: not an event type",
    "Unconfirmed": "unconfirmed registration: not an event type",
    "ManuallyDeactivated": "address deactivated by hand: not a delivery event",
    "InboundError": "inbound processing error: not an outbound event",
}
_TS_FIELD = {"Delivery": "DeliveredAt", "Bounce": "BouncedAt", "SpamComplaint": "BouncedAt",
             "Open": "ReceivedAt", "Click": "ReceivedAt", "SubscriptionChange": "ChangedAt"}

_DIAGNOSTIC_TYPE = re.compile(r"^\s*smtp;\s*", re.IGNORECASE)
_SMTP_CODE = re.compile(r"^\s*([245]\d\d)(?=[\s\-]|$)")


def map_payload(body: bytes, params: Mapping[str, str]) -> Mapped:
    """Map one webhook POST (one record)."""
    record = load_json(NAME, body)
    if not isinstance(record, dict):
        raise PayloadError("postmark: expected one JSON object per request")
    return map_items(NAME, [record], _map_record, params, noun="record")


def _kind(record_type: str, record: dict[str, Any]) -> str:
    if record_type == "Delivery":
        return "delivered"
    if record_type in ("Open", "Click"):
        return record_type.lower()
    if record_type == "SpamComplaint":
        return "complaint"
    if record_type == "Bounce":
        bounce_type = as_text(record.get("Type"))
        if bounce_type in _NOT_EVENTS:
            raise Rejected(f"{bounce_type} bounce: {_NOT_EVENTS[bounce_type]}")
        kind = _BOUNCE_TYPES.get(bounce_type)
        if kind is None:
            raise Rejected(f"unknown bounce Type {bounce_type!r}")
        return kind
    if record_type == "SubscriptionChange":
        if record.get("SuppressSending") is False:
            raise Rejected("resubscribe: not an event type")
        reason = as_text(record.get("SuppressionReason"))
        if reason in ("HardBounce", "SpamComplaint"):
            raise Rejected(f"suppression after a {reason}: already reported by its "
                            f"{'Bounce' if reason == 'HardBounce' else reason} webhook")
        origin = as_text(record.get("Origin"))
        if origin in ("Customer", "Admin"):
            raise Rejected(f"suppressed by the sender (Origin {origin}), not by the recipient")
        return "unsubscribe"
    if not record_type:
        raise Rejected("no RecordType (inbound webhooks carry no delivery events)")
    raise Rejected(f"unknown RecordType {record_type!r}")


def _map_record(record: dict[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
    record_type = as_text(record.get("RecordType"))
    kind = _kind(record_type, record)
    recipient = as_text(record.get("Recipient")) or as_text(record.get("Email"))
    if not recipient:
        raise Rejected(f"{record_type} record without Recipient/Email")
    ts = record.get(_TS_FIELD[record_type])
    if not ts:
        raise Rejected(f"{record_type} record without {_TS_FIELD[record_type]}")
    metadata = as_object(record.get("Metadata"))
    sender = sender_of(metadata.get("sender"), params, "`sender` to the message's Metadata")
    message_id = as_text(record.get("MessageID")).strip()
    if not message_id:
        raise Rejected(f"{record_type} record without MessageID")

    is_bounce_record = record_type in ("Bounce", "SpamComplaint")
    bounce_id = record.get("ID") if is_bounce_record else None
    bounce_type = as_text(record.get("Type")) if is_bounce_record else ""
    # "smtp;550 5.1.1 …": the DSN diagnostic type is no part of the server's words
    diagnostic = _DIAGNOSTIC_TYPE.sub("", as_text(record.get("Details")), count=1)
    found_code = _SMTP_CODE.match(diagnostic)
    found_status = STATUS_RE.search(diagnostic)
    geo = as_object(record.get("Geo"))
    return canonical(
        NAME,
        type=kind,
        ts=ts,
        sender=sender,
        recipient=recipient,
        message_id=message_id,
        event_id=(f"{NAME}:bounce:{bounce_id}" if bounce_id is not None
                  else event_id(NAME, message_id, kind, ts, recipient)),
        campaign_id=as_text(metadata.get("campaign_id")),
        flow_id=as_text(metadata.get("flow_id")),
        variant=as_text(metadata.get("variant")),
        user_agent=as_text(record.get("UserAgent")),
        ip=as_text(geo.get("IP")),
        url=as_text(record.get("OriginalLink")),
        smtp_code=int(found_code.group(1)) if found_code else None,
        smtp_status=found_status.group(1) if found_status else None,
        diagnostic=diagnostic,
        bounce_kind=bounce_type if kind in ("bounce", "deferred", "dropped") else None,
        auto_submitted="auto-replied" if bounce_type == "AutoResponder" else None,
        provider_event=f"{record_type}/{bounce_type}" if bounce_type else record_type,
        provider_message_id=message_id,
        description=as_text(record.get("Description")) if is_bounce_record else None,
        inactive=record.get("Inactive") if is_bounce_record else None,
        first_open=record.get("FirstOpen") if record_type == "Open" else None,
        platform=as_text(record.get("Platform")),
        client=as_text(as_object(record.get("Client")).get("Name")),
        click_location=as_text(record.get("ClickLocation")),
        country=as_text(geo.get("CountryISOCode")),
        suppression_reason=as_text(record.get("SuppressionReason")),
        origin=as_text(record.get("Origin")),
        message_stream=as_text(record.get("MessageStream")),
        tags=[tag] if (tag := as_text(record.get("Tag"))) else None,
    )


# --- basic auth ----------------------------------------------------------------------------
def verify(headers: Mapping[str, str], body: bytes, config: Mapping[str, Any]) -> None:
    """Check the HTTP basic-auth credentials Postmark sends (it does not sign bodies).

    Put them in the webhook URL (`https://user:password@host/…`) and in
    `config["postmark_basic_auth"]` as "user:password"; without that setting every
    request passes.
    """
    expected = config.get("postmark_basic_auth")
    if not expected:
        return
    scheme, _, token = header(headers, "Authorization").strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise SignatureError("postmark: no basic-auth credentials "
                             "(add user:password@ to the webhook URL)")
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("postmark: malformed basic-auth header") from None
    if not hmac.compare_digest(given, str(expected).encode()):
        raise SignatureError("postmark: wrong basic-auth credentials")
