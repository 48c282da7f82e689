"""Signed tracking links: tokens, keys, rotation, tampering, destination checks, the CLI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import struct

import pytest

from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from schemas.links import (
    MAX_TOKEN_CHARS,
    MAX_URL_CHARS,
    LinkClaims,
    LinkKeys,
    TokenError,
    UnsafeDestination,
    check_destination,
    sign,
    track_url,
    verify,
)
from tests.conftest import mailflow_cmd

SECRET = "0123456789abcdef-secret"
KEYS = LinkKeys.parse(f"k1:{SECRET}")
NOW = 1_795_000_000
REFUSALS = {"bad_signature", "malformed", "unknown_key"}


def claims(**changes) -> LinkClaims:
    base = LinkClaims(kind="c", message_id="<m-123@mta.shop.example>", sender="news.shop.example",
                      recipient_hash="3fc4814f4c14f4f0a81f0d1101931d43",
                      recipient_domain="example.org", campaign_id="spring-sale",
                      flow_id="welcome", variant="B", link=3,
                      url="https://shop.example/sale?utm_source=mail&x=%2F#top",
                      issued=NOW, expires=0, tracking="person")
    return base._replace(**changes)


def raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("kind,url,link", [("c", "https://shop.example/a?b=1#c", 0),
                                           ("h", "https://news.shop.example/", 0),
                                           ("o", "", -1), ("u", "", -1)])
def test_sign_verify_round_trip_for_every_kind(kind, url, link):
    c = claims(kind=kind, url=url, link=link)
    token = sign(c, KEYS)
    assert verify(token, KEYS, now=NOW + 5) == c
    assert len(token) <= MAX_TOKEN_CHARS and "=" not in token
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_unicode_fields_and_empty_fields_round_trip():
    c = claims(campaign_id="soldes d'été ☀", flow_id="", variant="", sender="ünï.example")
    assert verify(sign(c, KEYS), KEYS, now=NOW) == c


def test_aggregate_tokens_carry_no_recipient_hash():
    token = sign(claims(tracking="aggregate"), KEYS)
    got = verify(token, KEYS, now=NOW)
    assert got.recipient_hash == "" and got.tracking == "aggregate"
    assert got.recipient_domain == "example.org"
    assert b"3fc4814f" not in raw(token)


def test_track_url_paths():
    base = "https://t.shop.example/"
    assert track_url(base, claims(), KEYS).startswith("https://t.shop.example/c/")
    assert track_url(base, claims(kind="h"), KEYS).startswith("https://t.shop.example/c/")
    assert track_url(base, claims(kind="o", url="", link=-1), KEYS).startswith(
        "https://t.shop.example/o/")
    assert track_url(base, claims(kind="u", url="", link=-1), KEYS).startswith(
        "https://t.shop.example/u/")


def test_signing_normalises_the_destination():
    token = sign(claims(url="HTTPS://Bücher.Example/a?Q=%41#F"), KEYS)
    assert verify(token, KEYS, now=NOW).url == "https://xn--bcher-kva.example/a?Q=%41#F"


def test_sign_refuses_bad_claims():
    with pytest.raises(UnsafeDestination):
        sign(claims(url="javascript:alert(1)"), KEYS)
    with pytest.raises(ValueError):
        sign(claims(kind="x"), KEYS)
    with pytest.raises(ValueError):
        sign(claims(kind="o"), KEYS)  # an open with a url
    with pytest.raises(ValueError):
        sign(claims(tracking="everyone"), KEYS)
    with pytest.raises(ValueError):
        sign(claims(message_id="m" * 256), KEYS)
    with pytest.raises(ValueError):
        sign(claims(recipient_hash="ann@example.org"), KEYS)
    for field in ("message_id", "sender", "recipient_domain", "campaign_id", "flow_id",
                  "variant"):
        for bad in ("a\nb", "a\rb", "a\x00b", "a\u202eb", "a\u200bb"):
            with pytest.raises(ValueError):
                sign(claims(**{field: bad}), KEYS)


def test_token_length_is_bounded_at_signing_and_at_verification():
    long_url = "https://shop.example/" + "a" * (MAX_URL_CHARS - len("https://shop.example/"))
    assert check_destination(long_url) == long_url
    big = claims(url=long_url, message_id="m" * 255, sender="s" * 255, campaign_id="c" * 255)
    with pytest.raises(UnsafeDestination) as info:
        sign(big, KEYS)
    assert info.value.reason == "too_long"
    with pytest.raises(TokenError) as info:
        verify("A" * (MAX_TOKEN_CHARS + 1), KEYS, now=NOW)
    assert info.value.reason == "too_long"


# --- keys and rotation -------------------------------------------------------------------


def test_key_spec_parsing_and_refusals():
    keys = LinkKeys.parse(f"new:{SECRET}-n, old:{SECRET}:with:colons:2026-01-01, "
                          f"older:{SECRET}-o:2025-06-01T12:00:00Z")
    assert keys.signing_kid == "new" and keys.kids() == ["new", "old", "older"]
    assert SECRET not in repr(keys)
    for spec, words in [("", "no keys"), ("   ", "no keys"), ("k1", "no secret"),
                        ("k1:", "no secret"), ("k1:short", "at least 16"),
                        (f"k1:{SECRET},k1:{SECRET}x", "twice"), (f"bad kid:{SECRET}", "key id"),
                        (f"k1:{SECRET}:2026-01-01", "cannot be retired"),
                        (f"k1:{SECRET},k2:{SECRET}:2026-13-45", "ISO date")]:
        with pytest.raises(ValueError) as info:
            LinkKeys.parse(spec)
        assert words in str(info.value), spec
        assert SECRET not in str(info.value)


def test_a_secret_with_colons_signs_and_verifies():
    keys = LinkKeys.parse("k1:a:b:c:d:e:f:g:h:i:j:k:l")
    assert verify(sign(claims(), keys), keys, now=NOW) == claims()


def test_rotation_first_signs_all_verify_retired_keys_expire_after_grace():
    old = LinkKeys.parse(f"old:{SECRET}-old")
    token = sign(claims(), old)
    retired_at = 1_798_761_600  # 2027-01-01T00:00:00Z
    rotated = LinkKeys.parse(f"new:{SECRET}-new,old:{SECRET}-old:2027-01-01", grace_s=86_400)
    assert rotated.signing_kid == "new"
    new_token = sign(claims(), rotated)
    assert raw(new_token)[2:5] == b"new"
    # before retirement and within the grace period, the old key still verifies
    assert verify(token, rotated, now=NOW) == claims()
    assert verify(token, rotated, now=retired_at + 86_399) == claims()
    with pytest.raises(TokenError) as info:
        verify(token, rotated, now=retired_at + 86_400)
    assert info.value.reason == "retired_key"
    assert verify(new_token, rotated, now=retired_at + 10 * 86_400) == claims()
    # dropped from the list altogether: unknown
    with pytest.raises(TokenError) as info:
        verify(token, LinkKeys.parse(f"new:{SECRET}-new"), now=NOW)
    assert info.value.reason == "unknown_key"


def test_same_kid_with_another_secret_is_a_bad_signature():
    forged = sign(claims(), LinkKeys.parse("k1:attacker-guessed-secret"))
    with pytest.raises(TokenError) as info:
        verify(forged, KEYS, now=NOW)
    assert info.value.reason == "bad_signature"


def test_expiry():
    token = sign(claims(expires=NOW + 60), KEYS)
    assert verify(token, KEYS, now=NOW + 59).expires == NOW + 60
    for late in (NOW + 60, NOW + 10**9):
        with pytest.raises(TokenError) as info:
            verify(token, KEYS, now=late)
        assert info.value.reason == "expired"


# --- tampering ----------------------------------------------------------------------------


def test_flipping_any_bit_of_any_byte_never_verifies():
    token = sign(claims(), KEYS)
    data = raw(token)
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            tampered = bytearray(data)
            tampered[i] ^= bit
            with pytest.raises(TokenError) as info:
                verify(b64(bytes(tampered)), KEYS, now=NOW)
            assert info.value.reason in REFUSALS, (i, bit)


def test_changing_any_character_of_the_token_never_verifies():
    token = sign(claims(), KEYS)
    rng = random.Random(18)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.~%+/ "
    for i in range(len(token)):
        for ch in rng.sample(alphabet, 4):
            if ch == token[i]:
                continue
            with pytest.raises(TokenError) as info:
                verify(token[:i] + ch + token[i + 1:], KEYS, now=NOW)
            assert info.value.reason in REFUSALS, (i, ch)


@pytest.mark.parametrize("field,value", [
    ("kind", "o"), ("message_id", "m-124"), ("sender", "evil.example"),
    ("recipient_hash", "0" * 32), ("recipient_domain", "evil.example"),
    ("campaign_id", "other"), ("flow_id", "other"), ("variant", "A"), ("link", 4),
    ("url", "https://evil.example/"), ("issued", NOW + 1), ("expires", NOW + 3600),
    ("tracking", "aggregate")])
def test_every_field_is_covered_by_the_signature(field, value):
    """A token with one field changed but the original signature is refused."""
    good = raw(sign(claims(), KEYS))
    changed = claims(**{field: value})
    if field == "kind":
        changed = changed._replace(url="", link=-1)
    body = raw(sign(changed, LinkKeys.parse("k1:another-secret-of-16+")))[:-32]
    assert body != good[:-32]
    with pytest.raises(TokenError) as info:
        verify(b64(body + good[-32:]), KEYS, now=NOW)
    assert info.value.reason == "bad_signature"


def test_splicing_two_tokens_never_verifies():
    a, b = raw(sign(claims(), KEYS)), raw(sign(claims(url="https://b.example/"), KEYS))
    with pytest.raises(TokenError):
        verify(b64(a[:-32] + b[-32:]), KEYS, now=NOW)
    with pytest.raises(TokenError):
        verify(b64(b[:-32] + a[-32:]), KEYS, now=NOW)


def test_truncated_and_extended_tokens_never_verify():
    token = sign(claims(), KEYS)
    for n in range(len(token)):
        with pytest.raises(TokenError) as info:
            verify(token[:n], KEYS, now=NOW)
        assert info.value.reason in REFUSALS
    for tail in ("A", "AA", "AAAA", "_", "x" * 50, "=", "==", "%3D", "\n", " "):
        with pytest.raises(TokenError) as info:
            verify(token + tail, KEYS, now=NOW)
        assert info.value.reason in REFUSALS | {"too_long"}


def test_garbage_tokens_are_refused_never_crash():
    rng = random.Random(1818)
    samples = ["", "A", "AQ", "AQI", "////", "..", "%00", "\x00" * 10, "é" * 20, "null",
               "<script>", "AQJrMQ", "A" * 200, "_" * 1500]
    for _ in range(500):
        n = rng.randrange(0, 400)
        samples.append(b64(bytes([1]) + bytes(rng.randrange(256) for _ in range(n))))
        samples.append(b64(bytes(rng.randrange(256) for _ in range(n))))
    # structurally valid bodies with random fields and a random MAC
    for _ in range(200):
        kid = b"k1"
        body = bytes([1, len(kid)]) + kid + bytes(rng.randrange(256) for _ in range(60))
        samples.append(b64(body + bytes(rng.randrange(256) for _ in range(32))))
    for sample in samples:
        with pytest.raises(TokenError) as info:
            verify(sample, KEYS, now=NOW)
        assert info.value.reason in REFUSALS | {"too_long"}
    with pytest.raises(TokenError):
        verify(None, KEYS, now=NOW)  # type: ignore[arg-type]


def _hand_signed(url: str, kind: bytes = b"c") -> str:
    """A token packed by hand (the documented format) and signed with the real key."""
    fields = [b"m", b"s", b"", b"example.org", b"", b"", b""]
    body = bytes([1, 2]) + b"k1" + struct.pack(">ccIQQ", kind, b"p", 1, NOW, 0)
    for f in fields:
        body += bytes([len(f)]) + f
    body += struct.pack(">H", len(url)) + url.encode("latin-1")
    mac = hmac.new(SECRET.encode(), b"mailflow-link-v1\x00" + body, hashlib.sha256).digest()
    return b64(body + mac)


def test_the_documented_format_is_what_verify_reads():
    assert verify(_hand_signed("https://ok.example/"), KEYS, now=NOW).url == "https://ok.example/"


@pytest.mark.parametrize("url", ["javascript:alert(1)", "https://a@evil.example/",
                                 "//evil.example", "HTTPS://Upper.example/"])
def test_a_validly_signed_token_with_an_unsafe_url_still_never_redirects(url):
    """Defence in depth: verify re-checks the destination (and its normal form)."""
    with pytest.raises(TokenError) as info:
        verify(_hand_signed(url), KEYS, now=NOW)
    assert info.value.reason == "unsafe_destination"
    with pytest.raises(TokenError):
        verify(_hand_signed(url, kind=b"o"), KEYS, now=NOW)  # an open never carries a url


# --- destinations --------------------------------------------------------------------------

# Known open-redirect and URL-confusion payloads (PayloadsAllTheThings, Orange Tsai's
# "A New Era of SSRF", WHATWG URL spec corner cases, mail-tracker and Postal issues).
UNSAFE = [
    "https://evil.com\\@good.com", "http:/\\evil.com", "http:\\\\evil.com", "/\\evil.com",
    "\\\\evil.com", "https:evil.com", "https:/evil.com", "http:///evil.com",
    "https:////evil.com", "//evil.com/%2f..", "//evil.com", "///evil.com", "\\/\\/evil.com",
    "https://good.com@evil.com", "https://good.com:pass@evil.com", "https://@evil.com",
    "http://evil.com:80@good.com", "https://good.com%40evil.com", "https://good.com%2F@evil.com",
    "\thttps://good.com", " https://good.com", "https://good.com ", "https://good.com\n",
    "java\tscript:alert(1)", "https://go\rod.com", "https://evil.com%00.good.com",
    "https://evil.com\x00.good.com", "https://evil。com", "https://evil．com", "https://evil｡com",
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "javascript://good.com/%0aalert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "vbscript:msgbox(1)",
    "file:///etc/passwd", "ftp://evil.com/", "gopher://evil.com/", "mailto:a@b.com",
    "evil.com", "/relative/path", "?q=1", "#frag", "", "http://", "https://",
    "https://:443/", "https://good.com:99999/", "https://good.com:443.evil.com/",
    "https://good.com:-1/", "https://good.com:0x1bb/", "http://2130706433/",
    "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/", "http://0/",
    "http://1.2.3.4.5/", "http://01.02.03.04/", "http://[::1/", "http://[evil.com]/",
    "https://evil.com\u2044good.com", "https://evil.com\uff0fgood.com", "https://ev\u200bil.com",
    "https://good.com\u202e.moc.live", "https://good\u00ad.com", "https://%65vil.com",
    "https://evil.com%2f%2fgood.com", "https://evil$.com", "https://-evil.com",
    "https://evil..com", "https://evil.com./", "https://" + "a" * 64 + ".com/",
    "https://good.com//evil.com", "https://" + "a." * 130 + "com",
    "https://good.com/" + "a" * MAX_URL_CHARS, "\ufeffhttps://good.com",
    "https://good.com/\x7f", "https://good.com/?q=\u2028", "https://<script>.com/",
    "https://[fe80::1%eth0]/", "https://[fe80::1%25eth0]/",
    "https://xn--evil.com/", "https://xn--ls8h.example/", "https://xn--.example/",
    "https://xn--zz-.example/", "https://fa\u00df.de/", "https://\u03c3\u03bf\u03c2.gr/",
    "https://\U0001f4a9.example/",
    "https://evil.com\"onmouseover=alert(1)", "https://evil.com'/", "http://evil.com>@good.com",
]


def test_at_least_forty_payloads():
    assert len(set(UNSAFE)) >= 40


@pytest.mark.parametrize("url", UNSAFE)
def test_known_open_redirect_payloads_are_refused(url):
    with pytest.raises(UnsafeDestination) as info:
        check_destination(url)
    assert info.value.reason and " " not in info.value.reason


@pytest.mark.parametrize("url,reason", [
    ("https://good.com@evil.com", "userinfo"), ("//evil.com", "protocol_relative"),
    ("https://evil.com\\@good.com", "backslash"), ("\thttps://x.com", "control_chars"),
    ("javascript:alert(1)", "scheme"), ("https://evil。com", "unicode_dot"),
    ("http://2130706433/", "ip_literal"), ("https://x.com:99999/", "port"),
    ("https://evil.com%00.good.com", "host_chars"), ("https:///evil.com", "no_host"),
    ("https://x.com/" + "a" * 2000, "too_long")])
def test_refusal_reasons(url, reason):
    with pytest.raises(UnsafeDestination) as info:
        check_destination(url)
    assert info.value.reason == reason


# Destinations kept exactly as written (query strings and fragments are never re-encoded).
KEPT = [
    "https://shop.example/", "http://shop.example", "https://shop.example:8443/p",
    "https://shop.example/p?utm_source=newsletter&utm_medium=email&utm_campaign=spring#top",
    "https://shop.example/p?a=%2F&b=%zz&c=a+b&d=&&e==;f#frag?x/y",
    "https://shop.example/cb?redirect=https%3A%2F%2Fother.example%2F",
    "https://shop.example/p?q=hello%20world&empty=&dup=1&dup=2",
    "https://shop.example/p#",  "https://shop.example/p?", "https://shop.example/a/../b/./c",
    "https://shop.example/%2e%2e/%2F?x=%00", "https://shop.example/@user",
    "https://evil.com#@good.com", "https://shop.example/?email={{email}}&id=[1]|x^y`z",
    "http://127.0.0.1:8000/landing?a=1&b=two#f", "https://[2001:db8::1]:8443/x?y",
    "https://xn--bcher-kva.example/", "https://sub_domain.shop.example/",
]


@pytest.mark.parametrize("url", KEPT)
def test_safe_destinations_are_kept_exactly(url):
    assert check_destination(url) == url
    token = sign(claims(url=url), KEYS)
    assert verify(token, KEYS, now=NOW).url == url


@pytest.mark.parametrize("url,expected", [
    ("HTTPS://SHOP.Example/Path?Q=A#F", "https://shop.example/Path?Q=A#F"),
    ("https://bücher.example/straße?q=groß#ä",
     "https://xn--bcher-kva.example/stra%C3%9Fe?q=gro%C3%9F#%C3%A4"),
    ("https://пример.рф/", "https://xn--e1afmkfd.xn--p1ai/"),
    ("https://ex\u0430mple.com/", "https://xn--exmple-4nf.com/"),  # Cyrillic a: shown
    ("https://ｅｘａｍｐｌｅ.com/", "https://example.com/"),  # full-width: as a browser
    ("https://shop.example:0443/", "https://shop.example:443/"),
    ("https://[2001:DB8:0:0::1]/", "https://[2001:db8::1]/"),
])
def test_idn_and_normalisation(url, expected):
    assert check_destination(url) == expected


# --- the CLI ---------------------------------------------------------------------------------

ENV = {"MAILFLOW_TRACK_KEYS": f"k1:{SECRET}", "MAILFLOW_TRACK_BASE_URL": "https://t.example",
       "MAILFLOW_HASH_KEY": ""}


def test_cli_sign_round_trip_hashes_the_recipient(tmp_path):
    env = {**ENV, "MAILFLOW_DATA_DIR": str(tmp_path)}
    url = "https://shop.example/sale?utm_source=mail&x=%2F#top"
    proc = mailflow_cmd("links", "sign", "--dev", "--url", url, "--message-id", "m-1",
                        "--recipient", "Ann@Example.org", "--sender", "news.shop.example",
                        "--campaign", "spring", "--flow", "welcome", "--variant", "B",
                        env=env, timeout=120)
    tracked = proc.stdout.strip()
    assert tracked.startswith("https://t.example/c/")
    token = tracked.rsplit("/", 1)[1]
    got = verify(token, KEYS, now=NOW)
    assert got.url == url and got.message_id == "m-1" and got.flow_id == "welcome"
    assert got.recipient_hash == RecipientHasher(DEV_HASH_KEY).recipient("ann@example.org")
    assert got.recipient_domain == "example.org" and got.variant == "B"
    assert b"ann@" not in raw(token).lower() and b"ann%40" not in raw(token).lower()

    proc = mailflow_cmd("links", "sign", "--dev", "--kind", "u", "--message-id", "m-1",
                        "--recipient", "ann@example.org", "--sender", "s", "--aggregate",
                        env=env, timeout=120)
    assert proc.stdout.startswith("https://t.example/u/")
    got = verify(proc.stdout.strip().rsplit("/", 1)[1], KEYS, now=NOW)
    assert got.kind == "u" and got.recipient_hash == "" and got.tracking == "aggregate"


@pytest.mark.parametrize("url", ["https://good.com@evil.com", "javascript:alert(1)",
                                 "//evil.com", "https://evil.com\\@good.com"])
def test_cli_sign_refuses_unsafe_destinations_with_exit_code_2(url, tmp_path):
    env = {**ENV, "MAILFLOW_DATA_DIR": str(tmp_path)}
    proc = mailflow_cmd("links", "sign", "--dev", "--url", url, "--message-id", "m",
                        "--recipient", "a@example.org", "--sender", "s", env=env, check=False,
                        timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "unsafe destination" in proc.stderr


def test_cli_fails_closed_without_keys_or_hash_key(tmp_path):
    env = {**ENV, "MAILFLOW_DATA_DIR": str(tmp_path), "MAILFLOW_TRACK_KEYS": ""}
    args = ("links", "sign", "--dev", "--url", "https://a.example/", "--message-id", "m",
            "--recipient", "a@example.org", "--sender", "s")
    proc = mailflow_cmd(*args, env=env, check=False, timeout=120)
    assert proc.returncode == 2 and "MAILFLOW_TRACK_KEYS" in proc.stderr and proc.stdout == ""
    env["MAILFLOW_TRACK_KEYS"] = f"k1:{SECRET}"
    proc = mailflow_cmd(*[a for a in args if a != "--dev"], env=env, check=False, timeout=120)
    assert proc.returncode == 2 and "MAILFLOW_HASH_KEY" in proc.stderr
    env["MAILFLOW_TRACK_KEYS"] = "k1:short"
    proc = mailflow_cmd(*args, env=env, check=False, timeout=120)
    assert proc.returncode == 2 and "at least 16" in proc.stderr


@pytest.mark.parametrize("base", ["javascript:x", "https://t.example/?a=", "https://t.example/#x",
                                  "//t.example", "https://u@t.example"])
def test_cli_refuses_a_bad_base_url(base, tmp_path):
    env = {**ENV, "MAILFLOW_DATA_DIR": str(tmp_path), "MAILFLOW_TRACK_BASE_URL": base}
    proc = mailflow_cmd("links", "sign", "--dev", "--url", "https://a.example/", "--message-id",
                        "m", "--recipient", "a@example.org", "--sender", "s", env=env,
                        check=False, timeout=120)
    assert proc.returncode == 2 and "MAILFLOW_TRACK_BASE_URL" in proc.stderr


def test_cli_refuses_hostile_fields(tmp_path):
    env = {**ENV, "MAILFLOW_DATA_DIR": str(tmp_path)}
    for flag, value in (("--message-id", "m\r\nX-Injected: 1"), ("--campaign", "c" * 300),
                        ("--recipient", "ann@exa\nmple.org"), ("--sender", "s\x7f")):
        args = {"--message-id": "m", "--recipient": "a@example.org", "--sender": "s",
                flag: value}
        proc = mailflow_cmd("links", "sign", "--dev", "--url", "https://a.example/",
                            *[x for kv in args.items() for x in kv], env=env, check=False,
                            timeout=120)
        assert proc.returncode == 2 and proc.stdout == "", (flag, proc.stderr)


def test_cli_help_texts(capsys):
    from mailflow.cli import main

    for verb in ("sign", "rewrite"):
        with pytest.raises(SystemExit) as info:
            main(["links", verb, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert "--message-id" in out and "--recipient" in out and "MAILFLOW_TRACK_KEYS" in out


def test_cli_rewrite_writes_html_and_headers(tmp_path):
    env = {**ENV, "MAILFLOW_DATA_DIR": str(tmp_path), "MAILFLOW_HASH_KEY": "a-real-hash-key"}
    source = tmp_path / "mail.html"
    source.write_text('<html><body><p><a href="https://shop.example/?a=1&amp;b=2">x</a>'
                      '<a href="javascript:x()">y</a></p></body></html>')
    headers = tmp_path / "headers.json"
    import subprocess
    import sys

    from tests.conftest import ROOT
    proc = subprocess.run([sys.executable, "-m", "mailflow", "links", "rewrite",
                           "--message-id", "m-9", "--recipient", "bob@example.net",
                           "--sender", "news.shop.example", "--campaign", "c1",
                           "--headers-json", str(headers)],
                          stdin=source.open("rb"), capture_output=True, cwd=ROOT,
                          env={**__import__("os").environ, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    html = proc.stdout.decode()
    assert html.count('href="https://t.example/c/') == 2  # the link and the honeypot
    assert 'href="javascript:x()"' in html and "/o/" in html
    report = json.loads(headers.read_text())
    assert report["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert report["headers"]["List-Unsubscribe"].startswith("<https://t.example/u/")
    assert report["links"] == [{"index": 0, "url": "https://shop.example/?a=1&b=2"}]
    assert report["skipped"] == [{"href": "javascript:x()", "reason": "scheme"}]
    assert b"javascript:x()" in proc.stderr


def test_rewrite_command_passes_legacy_bytes_through_and_prints_headers():
    """A body that is not UTF-8 (a legacy charset) comes out byte for byte, links tracked."""
    import io
    from types import SimpleNamespace

    from flows.settings import Settings
    from mailflow.links import rewrite_command

    settings = Settings(track_keys=f"k1:{SECRET}", track_base_url="https://t.example",
                        hash_key="a-real-hash-key")
    args = SimpleNamespace(message_id="m", recipient="ann@example.org", sender="s.example",
                           campaign="", flow="", variant="", aggregate=False, ttl=None,
                           headers_json=None, honeypot_url=None, unsubscribe_mailto=None)
    body = ('<meta charset="iso-8859-1"><body><p>Caf\xe9 cr\xe8me</p>'
            '<a href="https://a.example/?q=1">a</a><a href="https://a.example/\xe9">b</a>'
            '</body>').encode("latin-1")
    out, err = io.BytesIO(), io.StringIO()
    assert rewrite_command(settings, args, source=io.BytesIO(body), out=out, err=err) == 0
    result = out.getvalue()
    assert b"<p>Caf\xe9 cr\xe8me</p>" in result
    assert b'<a href="https://a.example/\xe9">b</a>' in result  # not UTF-8: left, reported
    assert result.count(b'href="https://t.example/c/') == 2  # the link and the honeypot
    lines = err.getvalue().splitlines()
    assert any("left untracked (control_chars)" in line for line in lines)
    assert any(line.startswith("List-Unsubscribe: <https://t.example/u/") for line in lines)
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    assert "ann@example.org" not in result.decode("latin-1") + err.getvalue()


@pytest.mark.parametrize("flag,value", [("--sender", "private.example"),
                                        ("--campaign", "gdpr-sensitive")])
def test_senders_and_campaigns_configured_aggregate_get_no_recipient_hash(flag, value,
                                                                          tmp_path):
    env = {**ENV, "MAILFLOW_DATA_DIR": str(tmp_path),
           "MAILFLOW_TRACK_AGGREGATE": "private.example, gdpr-sensitive"}
    args = {"--message-id": "m", "--recipient": "a@example.org", "--sender": "s.example",
            "--campaign": "c", flag: value}
    proc = mailflow_cmd("links", "sign", "--dev", "--url", "https://a.example/",
                        *[x for kv in args.items() for x in kv], env=env, timeout=120)
    got = verify(proc.stdout.strip().rsplit("/", 1)[1], KEYS, now=NOW)
    assert got.tracking == "aggregate" and got.recipient_hash == ""
    args[flag] = "other"
    proc = mailflow_cmd("links", "sign", "--dev", "--url", "https://a.example/",
                        *[x for kv in args.items() for x in kv], env=env, timeout=120)
    got = verify(proc.stdout.strip().rsplit("/", 1)[1], KEYS, now=NOW)
    assert got.tracking == "person" and len(got.recipient_hash) == 32


def test_links_follow_the_edges_tracking_table_too(tmp_path):
    """`[tracking]` (the edge's table) and `track_aggregate` decide alike for `links`."""
    config = tmp_path / "mailflow.toml"
    config.write_text('[tracking]\n"s.example/quiet" = "aggregate"\n')
    env = {**ENV, "MAILFLOW_DATA_DIR": str(tmp_path), "MAILFLOW_CONFIG": str(config)}
    tokens = {}
    for campaign in ("quiet", "loud"):
        proc = mailflow_cmd("links", "sign", "--dev", "--url", "https://a.example/",
                            "--message-id", "m", "--recipient", "a@example.org",
                            "--sender", "s.example", "--campaign", campaign, env=env,
                            timeout=120)
        tokens[campaign] = verify(proc.stdout.strip().rsplit("/", 1)[1], KEYS, now=NOW)
    assert tokens["quiet"].tracking == "aggregate" and tokens["quiet"].recipient_hash == ""
    assert tokens["loud"].tracking == "person" and tokens["loud"].recipient_hash
