"""Privacy at the edge: no address survives in any free-text field, IPs are kept as networks.

Each test is a leak that was found: a URL-encoded "@" (`?e=ann%40example.com`), a
non-ASCII local part that left "jö" in front of the hash, fields that were never
scrubbed (user agent, campaign, message id), and reader IPs stored whole.
"""

from __future__ import annotations

import orjson
import pytest

from operators.analytics import EngagementAnalytics
from operators.engagement import Interaction
from schemas import rows as out
from schemas.events import Event, EventParser
from schemas.hashing import RecipientHasher, truncate_ip

NOW = 1_795_255_203.0  # 2026-11-21T10:00:03Z
HASHER = RecipientHasher(b"test-key")


def tag(address: str) -> str:
    """What an address becomes in free text."""
    return "hash:" + HASHER.recipient(address)[:12]


def parse(**fields: object) -> Event:
    base = {"type": "click", "ts": "2026-11-21T10:00:00Z", "sender": "news.acme.example",
            "recipient": "ann@example.com", "message_id": "m-1"}
    base.update(fields)
    ev = EventParser(HASHER, now=lambda: NOW).parse(orjson.dumps(base), "email.clicks", 0, 1)
    assert type(ev) is Event, ev
    return ev


@pytest.mark.parametrize("url, expected", [
    ("https://x.example/u?e=ann%40example.com", "https://x.example/u?e=" + tag("ann@example.com")),
    ("https://x.example/u?e=ANN%40EXAMPLE.COM&z=1",
     "https://x.example/u?e=" + tag("ann@example.com") + "&z=1"),
    ("https://x.example/u?e=ann%2Btag%40example.com", "https://x.example/u?e="
     + tag("ann+tag@example.com")),
    ("https://x.example/u?to=e%3Dann%40example.com", "https://x.example/u?to=e%3D"
     + tag("ann@example.com")),
    ("https://x.example/u?e=j%C3%B6rg%40example.com", "https://x.example/u?e="
     + tag("jörg@example.com")),
    ("https://x.example/u?e=ann&#64;example.com", "https://x.example/u?e="
     + tag("ann@example.com")),
])
def test_url_encoded_and_entity_addresses_are_scrubbed(url, expected):
    assert parse(url=url).url == expected


@pytest.mark.parametrize("address", [
    "jörg@example.com", "Jörg.Müller@bücher.example", "山田@例え.テスト", "ann@bücher.example",
    "ann@xn--bcher-kva.example", "jo\u0308rg@example.com", "ｊｏｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",
    "пользователь@пример.рф",
])
def test_unicode_local_parts_and_idn_domains_are_scrubbed_whole(address):
    ev = parse(diagnostic=f"550 5.1.1 <{address}>: unknown", note=f"«{address}»")
    # hashed as written, with its "@" and dots read as such (full-width ones too)
    hashed = tag(address.replace("＠", "@").replace("．", "."))
    assert ev.diagnostic == f"550 5.1.1 <{hashed}>: unknown"
    assert ev.attrs["note"] == f"«{hashed}»"


def test_scrubbed_text_names_the_same_recipient_as_the_recipient_hash():
    ev = parse(recipient="Jörg@Bücher.example", url="https://x.example/?e=j%C3%B6rg%40b%C3%BCcher.example")
    assert ev.url.endswith("hash:" + ev.recipient_hash[:12])


@pytest.mark.parametrize("field", ["user_agent", "campaign_id", "flow_id", "variant", "goal",
                                   "event_id", "smtp_status", "bounce_kind", "currency"])
def test_every_free_text_field_is_scrubbed(field):
    ev = parse(**{field: "x ann@example.com y"})
    assert getattr(ev, field) == f"x {tag('ann@example.com')} y"


def test_unknown_fields_are_scrubbed_keys_and_values():
    ev = parse(crm={"ann@example.com": {"to": ["ann%40example.com", 3]}})
    assert ev.attrs == {"crm": {tag("ann@example.com"): {"to": [tag("ann@example.com"), 3]}}}


def test_message_id_loses_the_recipients_address_and_still_joins():
    quoted = ["<m-ann@example.com>", "<0ann@example.com.x7>", "ann%40example.com.42"]
    for message_id in quoted:
        ev = parse(message_id=message_id)
        assert "ann@example.com" not in ev.message_id.replace("%40", "@")
        assert tag("ann@example.com") in ev.message_id
        # deterministic: every event of this message carries the same id, so they join
        assert parse(message_id=message_id, type="open").message_id == ev.message_id


def test_message_id_of_an_event_with_only_a_recipient_hash_loses_the_address_too():
    fields = {"recipient": None, "recipient_hash": HASHER.recipient("ann@example.com"),
              "recipient_domain": "example.com"}
    for message_id in ["<m-ann@example.com>", "<Ann@Example.com.x7>", "ann%40example.com"]:
        ev = parse(message_id=message_id, **fields)
        assert tag("ann@example.com") in ev.message_id, message_id


def test_message_ids_that_are_address_shaped_by_design_stay_as_the_sender_knows_them():
    mailgun = "20251121100000.1a2b3c4d5e6f7a8b@mg.acme.example"
    assert parse(message_id=mailgun).message_id == mailgun
    # the recipient's domain alone is not the recipient
    assert parse(message_id="<x7@example.com>").message_id == "<x7@example.com>"


def test_ip_is_cut_to_its_network_in_the_stored_row():
    human = Interaction(True, "", 0.0)
    for ip, stored in [("203.0.113.77", "203.0.113.0"), ("2001:db8:abcd:12::7", "2001:db8:abcd::"),
                       ("::ffff:198.51.100.9", "::ffff:198.51.100.0"), ("", ""),
                       ("not an ip ann@example.com", ""), ("203.0.113.7, 10.0.0.1", "")]:
        row = dict(zip(out.EVENT_COLUMNS, out.event_row(parse(ip=ip), None, human),
                       strict=True))
        assert row["ip"] == stored, ip
        assert truncate_ip(ip) == stored


def test_machine_open_classification_still_sees_the_full_ip():
    # Apple's proxy (17.0.0.0/8) opens everything: classified on the full IP, stored cut.
    delivered = parse(type="delivered", ts="2026-11-21T09:00:00Z")
    opened = parse(type="open", ip="17.58.1.2", user_agent="Mozilla/5.0")
    batch = EngagementAnalytics().apply([(delivered, None), (opened, None)])
    enriched = [e for e in batch.events if e.event.type == "open"][0]
    assert enriched.interaction.reason == "apple_proxy" and not enriched.interaction.is_human
    row = dict(zip(out.EVENT_COLUMNS, out.event_row(enriched.event, None, enriched.interaction),
                   strict=True))
    assert row["ip"] == "17.58.1.0"
