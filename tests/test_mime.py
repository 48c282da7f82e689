"""Raw RFC 5322 replies → canonical `reply` events (`schemas/mime.py`) and their parsing."""

from __future__ import annotations

import random
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import orjson
import pytest

from schemas.events import DeadLetter, Event, EventParser
from schemas.hashing import RecipientHasher
from schemas.mime import (
    _POLICY,
    MAX_BODY_BYTES,
    MAX_PARSED_HEADER_CHARS,
    MAX_RAW_BYTES,
    reply_from_mime,
)

NOW = 1_795_300_000.0
HEAD = (b"From: Ann Example <Ann@Example.com>\r\nTo: Replies <reply@news.acme.example>\r\n"
        b"Subject: Re: Your offer\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
        b"Message-ID: <r-1@mail.example.com>\r\nIn-Reply-To: <m-1@acme.example>\r\n")


def reply(extra: bytes = b"", body: bytes = b"Yes, send me the pricing.\r\n",
          head: bytes = HEAD) -> bytes:
    return head + extra + b"\r\n" + body


def test_a_plain_reply_maps_every_field():
    ev = reply_from_mime(reply(b"Auto-Submitted: auto-replied\r\nPrecedence: bulk\r\n"
                               b"X-Spam: 1\r\n"), ts=NOW)
    assert ev == {
        "type": "reply", "ts": 1795255200.0, "sender": "news.acme.example",
        "recipient": "ann@example.com", "message_id": "m-1@acme.example",
        "reply_id": "r-1@mail.example.com", "subject": "Re: Your offer",
        "body": "Yes, send me the pricing.",
        "headers": {"In-Reply-To": "<m-1@acme.example>", "Auto-Submitted": "auto-replied",
                    "Precedence": "bulk"},
    }


def test_given_sender_wins_and_delivered_to_is_the_fallback():
    assert reply_from_mime(reply(), sender="tenant-7")["sender"] == "tenant-7"
    head = HEAD.replace(b"To: Replies <reply@news.acme.example>\r\n",
                        b"Delivered-To: bounce@mail.acme.example\r\n")
    assert reply_from_mime(reply(head=head))["sender"] == "mail.acme.example"


def test_in_reply_to_wins_over_references_and_references_last_is_the_fallback():
    refs = b"References: <m-0@acme.example>\r\n <m-9@acme.example>\r\n"
    assert reply_from_mime(reply(refs))["message_id"] == "m-1@acme.example"
    head = HEAD.replace(b"In-Reply-To: <m-1@acme.example>\r\n", b"")
    assert reply_from_mime(reply(refs, head=head))["message_id"] == "m-9@acme.example"
    # naming no message, a reply is still a reply (routed with its flow unknown)
    assert "message_id" not in reply_from_mime(reply(head=head))


def test_missing_message_id_gives_a_stable_hash_and_missing_date_the_receive_time():
    head = HEAD.replace(b"Message-ID: <r-1@mail.example.com>\r\n", b"") \
        .replace(b"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n", b"")
    first = reply_from_mime(reply(head=head), ts=NOW)
    assert first["reply_id"].startswith("sha256:") and first["reply_id"] == \
        reply_from_mime(reply(head=head), ts=NOW + 5)["reply_id"]
    assert first["ts"] == NOW
    with pytest.raises(ValueError, match="no usable Date"):  # neither a Date nor a ts
        reply_from_mime(reply(head=head))
    with pytest.raises(ValueError, match="no usable Date"):
        reply_from_mime(reply(head=head.replace(b"From:", b"Date: yesterday\r\nFrom:")))


def test_a_date_from_a_broken_clock_is_replaced_by_the_receive_time():
    future = reply(head=HEAD.replace(b"2026", b"2031"))
    assert reply_from_mime(future, ts=NOW)["ts"] == NOW
    assert reply_from_mime(reply(head=HEAD.replace(b"2026", b"1980")), ts=NOW)["ts"] == NOW


def test_rfc2047_subjects_are_decoded():
    head = HEAD.replace(b"Subject: Re: Your offer",
                        b"Subject: =?iso-8859-1?q?AW:_Gr=FC=DFe?= =?utf-8?b?YXVzIEvDtmxu?=")
    assert reply_from_mime(reply(head=head))["subject"] == "AW: Grüßeaus Köln"


def multipart(*parts: MIMEText, kind: str = "alternative") -> bytes:
    msg = MIMEMultipart(kind)
    for part in parts:
        msg.attach(part)
    return reply(head=HEAD + b"MIME-Version: 1.0\r\n").replace(b"\r\n\r\n", b"\r\n", 1) \
        .split(b"\r\nYes")[0] + b"\r\n" + msg.as_bytes()


def test_multipart_alternative_prefers_the_plain_part():
    raw = multipart(MIMEText("Plain words", "plain", "utf-8"),
                    MIMEText("<p>HTML words</p>", "html", "utf-8"))
    assert reply_from_mime(raw)["body"] == "Plain words"


def test_html_only_is_converted_to_text_without_script_and_style():
    html = ("<html><head><style>.x{color:red}</style><title>t</title></head><body>"
            "<p>Hello&nbsp;team,</p><div>I am out<br>until Friday.</div>"
            "<script>alert(1)</script><ul><li>one</li><li>two</li></ul></body></html>")
    body = reply_from_mime(multipart(MIMEText(html, "html", "utf-8"), kind="mixed"))["body"]
    assert body == "Hello team,\n\nI am out\nuntil Friday.\n\none\n\ntwo"


def test_quoted_printable_and_base64_bodies_are_decoded():
    qp = reply(b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: quoted-printable\r\n",
               b"Sch=C3=B6ne Gr=C3=BC=C3=9Fe, a long line that is =\r\nsoft-wrapped\r\n")
    assert reply_from_mime(qp)["body"] == "Schöne Grüße, a long line that is soft-wrapped"
    b64 = reply(b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: base64\r\n", b"QmllbiBzw7tyLCBtZXJjaS4=\r\n")
    assert reply_from_mime(b64)["body"] == "Bien sûr, merci."


@pytest.mark.parametrize("charset", ["iso-8859-1", "windows-1252"])
def test_single_byte_charsets_decode_as_windows_1252(charset):
    raw = reply(f"Content-Type: text/plain; charset={charset}\r\n".encode(),
                b"\x93Danke\x94 \x96 caf\xe9, \x80 5\r\n")
    assert reply_from_mime(raw)["body"] == "“Danke” – café, € 5"


def test_format_flowed_paragraphs_are_joined():
    raw = reply(b"Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes\r\n",
                b"Please take me off  \r\nyour list.\r\n\r\nOn Mon, Ann wrote:\r\n"
                b"> Our offer for  \r\n> you.\r\n")
    assert reply_from_mime(raw)["body"] == ("Please take me off your list.\n\n"
                                            "On Mon, Ann wrote:\n> Our offer for you.")


def test_html_quotes_are_marked_like_plain_quotes():
    html = ("<div>Stop mailing me.</div><div class=gmail_quote>On Mon, Ann wrote:"
            "<blockquote>Click <a href='u'>unsubscribe</a> to stop</blockquote></div>")
    raw = multipart(MIMEText(html, "html", "utf-8"), kind="mixed")
    assert reply_from_mime(raw)["body"] == ("Stop mailing me.\n\nOn Mon, Ann wrote:\n"
                                            "> Click unsubscribe to stop")


def test_attachments_are_not_the_body():
    attached = MIMEText("not this", "plain", "utf-8")
    attached.add_header("Content-Disposition", "attachment", filename="a.txt")
    raw = multipart(attached, MIMEText("<b>this</b>", "html", "utf-8"), kind="mixed")
    assert reply_from_mime(raw)["body"] == "this"


def test_the_body_is_cut_at_its_bound_on_a_character_boundary():
    raw = reply(b"Content-Type: text/plain; charset=utf-8\r\n", "ü".encode() * 100_000)
    body = reply_from_mime(raw)["body"]
    assert len(body.encode()) == MAX_BODY_BYTES and set(body) == {"ü"}


def nested(depth: int) -> bytes:
    text = b"--b0\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--b0--\r\n"
    for level in range(1, depth):
        text = (f"--b{level}\r\nContent-Type: multipart/mixed; boundary=b{level - 1}\r\n\r\n"
                .encode() + text + f"--b{level}--\r\n".encode())
    return reply(f"Content-Type: multipart/mixed; boundary=b{depth - 1}\r\n".encode(), text)


HOSTILE = {
    "empty": b"",
    "blank lines": b"\r\n\r\n\r\n",
    "not MIME at all": b"\x00\xff garbage \x89PNG" * 50,
    "JSON, not mail": b'{"type": "reply"}',
    "no From": HEAD.replace(b"From: Ann Example <Ann@Example.com>\r\n", b"") + b"\r\nhi",
    "From without an address": HEAD.replace(b"<Ann@Example.com>", b"<nobody>") + b"\r\nhi",
    "no To and no sender": HEAD.replace(b"To: Replies <reply@news.acme.example>\r\n", b"")
    + b"\r\nhi",
    "too large": HEAD + b"\r\n" + b"x" * (MAX_RAW_BYTES + 1),
    "deeply nested multiparts": nested(200),
    "huge header section": HEAD + b"X-Pad: " + b"a" * 300_000 + b"\r\n\r\nhi",
    "not bytes": "From: a@b.example",
    "a million empty parts": reply(b"Content-Type: multipart/mixed; boundary=zz\r\n",
                                   b"--zz\r\n\r\n" * 1_000_000),
}


@pytest.mark.parametrize("raw", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_input_is_a_value_error_with_a_reason(raw):
    with pytest.raises(ValueError) as info:
        reply_from_mime(raw, ts=NOW)
    assert str(info.value)


TOLERATED = {
    "unknown charset": (b"Content-Type: text/plain; charset=x-no-such\r\n", b"caf\xc3\xa9"),
    "a codec that is not a charset": (b"Content-Type: text/plain; charset=rot13\r\n", b"abc"),
    "broken base64": (b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
                      b"!!!not*base64==="),
    "unterminated multipart": (b"Content-Type: multipart/mixed; boundary=zz\r\n",
                               b"--zz\r\nContent-Type: text/plain\r\n\r\nhalf"),
    "broken HTML": (b"Content-Type: text/html\r\n", b"<p>a<b<<</div><script>x"),
    "bad encoded word": (b"", b"hi"),
    "nested 40 deep": (b"", b""),
}


@pytest.mark.parametrize("name", list(TOLERATED))
def test_broken_but_readable_input_gives_a_reply(name):
    extra, body = TOLERATED[name]
    raw = reply(extra, body) if name != "nested 40 deep" else nested(40)
    if name == "bad encoded word":
        raw = raw.replace(b"Re: Your offer", b"=?bogus-cs?q?=FF=FE?= and =?utf-8?b?###?=")
    ev = reply_from_mime(raw, ts=NOW)
    assert ev["type"] == "reply" and isinstance(ev["body"], str)
    assert isinstance(ev["subject"], str)


def test_part_headers_are_read_as_plain_cut_text_not_by_the_structured_parser():
    # the structured parser took 40 s for 500 parts with 400 Content-Type parameters each
    value = _POLICY.header_fetch_parse("Content-Type", "text/plain; " + "a=b; " * 10_000)
    assert type(value) is str and len(value) == MAX_PARSED_HEADER_CHARS
    part = b"--zz\r\nContent-Type: text/html" + b"; a=b" * 500 + b"\r\n\r\n<p>x</p>\r\n"
    raw = reply(b"Content-Type: multipart/mixed; boundary=zz\r\n", part * 400 + b"--zz--\r\n")
    assert reply_from_mime(raw, ts=NOW)["body"] == "x"


def test_random_mutations_never_raise_anything_but_value_error():
    rng = random.Random(17)
    base = multipart(MIMEText("Plain words ü", "plain", "utf-8"),
                     MIMEText("<p>HTML</p>", "html", "iso-8859-1")) \
        .replace(b"Re: Your offer", "Grüße".encode())
    for _ in range(300):
        raw = bytearray(base)
        for _ in range(rng.randint(1, 20)):
            at = rng.randrange(len(raw))
            raw[at:at + rng.randint(0, 8)] = bytes(rng.randrange(256)
                                                   for _ in range(rng.randint(0, 8)))
        try:
            ev = reply_from_mime(bytes(raw), ts=NOW)
        except ValueError as exc:
            assert str(exc)
        else:
            assert set(ev) - {"message_id"} == {"type", "ts", "sender", "recipient", "reply_id",
                                                "subject", "body", "headers"}
            assert all(isinstance(v, str) for v in ev["headers"].values())
            orjson.dumps(ev)  # JSON can carry it: no lone surrogates


def test_raw_8bit_headers_and_undeclared_bodies_read_as_utf8_else_windows_1252():
    utf8 = ("From: Jörg <jörg@example.de>\r\nTo: r@acme.example\r\nSubject: Grüße – Café\r\n"
            "In-Reply-To: <m@acme.example>\r\nX-Autoreply: ja ü\r\n\r\nKörper").encode()
    ev = reply_from_mime(utf8, ts=NOW)
    assert (ev["recipient"], ev["subject"], ev["body"], ev["headers"]["X-Autoreply"]) == \
        ("jörg@example.de", "Grüße – Café", "Körper", "ja ü")
    latin = utf8.decode().encode("cp1252")
    ev = reply_from_mime(latin, ts=NOW)
    assert (ev["subject"], ev["body"]) == ("Grüße – Café", "Körper")
    orjson.dumps(ev)


def test_an_encoded_word_hiding_a_surrogate_still_gives_json():
    raw = reply().replace(b"Re: Your offer", b"=?utf-8?b?7aCAIHg=?=")  # b"\xed\xa0\x80 x"
    orjson.dumps(reply_from_mime(raw, ts=NOW))


def test_email_message_built_replies_round_trip():
    msg = EmailMessage()
    msg["From"] = "Jörg <joerg@example.de>"
    msg["To"] = "reply@acme.example"
    msg["Subject"] = "Abwesenheitsnotiz: Ihr Angebot"
    msg["In-Reply-To"] = "<m-7@acme.example>"
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("Ich bin bis zum 18.12. nicht im Büro.")
    msg["Content-Language"] = "de-DE"  # after set_content, which drops Content-* headers
    ev = reply_from_mime(msg.as_bytes(), ts=NOW)
    assert ev["subject"] == "Abwesenheitsnotiz: Ihr Angebot"
    assert ev["body"] == "Ich bin bis zum 18.12. nicht im Büro."
    assert ev["headers"]["Content-Language"] == "de-DE"


# -- the job's parser: reply fields kept, headers checked, reply_feedback --------------------

PARSER = EventParser(RecipientHasher(b"k"), now=lambda: NOW)


def parse(obj: dict, topic: str = "email.replies") -> Event | DeadLetter:
    return PARSER.parse(orjson.dumps(obj), topic, 0, 1)


def test_a_mime_reply_passes_the_parser_read_and_without_its_text():
    ev = parse(reply_from_mime(reply(b"Precedence: bulk\r\n"), ts=NOW))
    assert isinstance(ev, Event) and ev.type == "reply" and ev.message_id == "m-1@acme.example"
    assert ev.attrs["reply_id"] == "r-1@mail.example.com"
    assert not {"subject", "body", "headers"} & set(ev.attrs)  # read, then dropped
    verdict = ev.attrs["reply"].verdict
    assert verdict.intent == "interested" and not verdict.auto  # Precedence: bulk alone


def test_reply_id_is_kept_as_the_sender_knows_it_while_free_text_is_scrubbed():
    ev = parse({**reply_from_mime(reply(body=b"ask bob@example.org instead"), ts=NOW)})
    assert ev.attrs["reply_id"] == "r-1@mail.example.com"
    read = ev.attrs["reply"]  # the contact raw (for the route only), the features scrubbed
    assert read.contact == "bob@example.org"
    assert read.contact_hash == RecipientHasher(b"k").recipient("bob@example.org")
    assert not any("bob" in f or "example.org" in f for f in read.features)


@pytest.mark.parametrize("headers, reason", [
    (["Precedence"], "headers must be an object, got array"),
    ("Precedence: bulk", "headers must be an object, got string"),
    ({"X-Autoreply": {"a": "b"}}, "headers must map names to strings: X-Autoreply is an object"),
    ([["X-Autoreply", {"a": "b"}]], "headers must map names to strings: X-Autoreply is an object"),
])
def test_reply_headers_must_be_an_object_or_pairs_of_text(headers, reason):
    event = reply_from_mime(reply(), ts=NOW)
    dead = parse({**event, "headers": headers})
    assert isinstance(dead, DeadLetter) and dead.error == reason


def test_reply_headers_in_the_forms_webhooks_send_are_read_alike():
    event = reply_from_mime(reply(), ts=NOW)
    forms = [{"Auto-Submitted": "auto-replied", "X-Count": 3},
             [["Auto-Submitted", "auto-replied"], ["X-Count", 3]],
             {"Auto-Submitted": ["auto-replied"], "X-Count": "3"}]
    reads = [parse({**event, "headers": h}).attrs["reply"].verdict for h in forms]
    assert all(v.auto and v == reads[0] for v in reads)
    many = parse({**event, "headers": {f"X-{i}": "v" for i in range(300)}})
    assert isinstance(many, Event)  # the first 100 names are read, the rest ignored


def test_a_replys_text_under_another_name_is_read_and_never_kept():
    event = reply_from_mime(reply(), ts=NOW)
    del event["body"]
    for alias in ("text", "html", "body_html", "body_plain"):
        ev = parse({**event, alias: "<p>Please unsubscribe me from this list.</p>"})
        assert ev.attrs["reply"].verdict.intent == "unsubscribe_request", alias
        assert alias not in ev.attrs and "body" not in ev.attrs


@pytest.mark.parametrize("field, value", [("reply_id", 7), ("subject", ["x"]), ("body", {})])
def test_reply_text_fields_must_be_strings(field, value):
    dead = parse({**reply_from_mime(reply(), ts=NOW), field: value})
    assert isinstance(dead, DeadLetter) and dead.error.startswith(f"{field} must be a string")


def feedback(**fields) -> dict:
    return {"reply_id": "r-1@mail.example.com", "ts": NOW - 60, "action": "resolved", **fields}


def test_reply_feedback_parses_without_recipient_or_sender():
    ev = parse(feedback(queue="support", intent="support_question"), "email.reply_feedback")
    assert isinstance(ev, Event) and ev.type == "reply_feedback"
    assert ev.attrs == {"action": "resolved", "queue": "support", "intent": "support_question",
                        "reply_id": "r-1@mail.example.com"}
    assert ev.recipient_hash == "" and ev.ts_ms == int((NOW - 60) * 1000)
    typed = parse({**feedback(), "type": "reply_feedback"}, "email.reply_feedback")
    assert isinstance(typed, Event) and typed.type == "reply_feedback"


@pytest.mark.parametrize("topic", ["email.replies", "email.deliveries", "email.opens"])
def test_reply_feedback_on_a_recipient_topic_is_a_dead_letter(topic):
    dead = parse({**feedback(), "type": "reply_feedback"}, topic)
    assert isinstance(dead, DeadLetter)
    assert dead.error == f"reply_feedback belongs on email.reply_feedback, not {topic}"


@pytest.mark.parametrize("fields, reason", [
    ({"reply_id": None}, "missing required field: reply_id"),
    ({"action": "liked"}, "unknown action: 'liked' (one of reassigned, relabelled, "
                          "first_response, resolved)"),
    ({"action": None}, "missing required field: action"),
    ({"queue": 3}, "queue must be a string, got number"),
    ({"intent": ["x"]}, "intent must be a string, got array"),
    ({"ts": "yesterday"}, "ts is not RFC 3339: 'yesterday'"),
])
def test_bad_reply_feedback_is_a_dead_letter_with_a_reason(fields, reason):
    dead = parse(feedback(**fields), "email.reply_feedback")
    assert isinstance(dead, DeadLetter) and dead.error == reason
