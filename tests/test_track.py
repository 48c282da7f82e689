"""`mailflow track`: real HTTP on loopback, the real embedded broker, no mocks.

The edge's clock is a fixed one the tests move by hand (TrackCore(now=...)), so
"the same second" and "within two seconds" never depend on how fast a test runs.
"""

from __future__ import annotations

import http.client
import os
import random
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from mailflow.track import PIXEL, TrackCore, TrackServer
from operators.edge import EdgeJudge
from operators.engagement import MessageTracker
from operators.event import Event
from schemas.events import EventParser
from schemas.hashing import RecipientHasher
from schemas.links import LinkClaims, LinkKeys, sign
from tests.conftest import ROOT, consume_all, mailflow_cmd

T0 = 1_795_000_000.25
KEYS = "k2:second-secret-0123456789,k1:first-secret-0123456789"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
RECIPIENT = "ab" * 16


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def claims(kind: str = "c", message: str = "m-1", link: int = 0,
           url: str = "https://shop.example/p?a=1&b=%2F&c=x#frag", **kw: Any) -> LinkClaims:
    fields = dict(kind=kind, message_id=message, sender="news.acme.example",
                  recipient_hash=RECIPIENT, recipient_domain="gmail.com",
                  campaign_id="spring", flow_id="welcome", variant="B", link=link,
                  url=url if kind in ("c", "h") else "", issued=int(T0) - 3600, expires=0,
                  tracking="person")
    fields.update(kw)
    return LinkClaims(**fields)


def token(keys: str = KEYS, **kw: Any) -> str:
    return sign(claims(**kw), LinkKeys.parse(keys))


class Edge:
    """A running edge and a way to talk to it."""

    def __init__(self, core: TrackCore, server: TrackServer, bootstrap: str, clock: Clock):
        self.core, self.server, self.bootstrap, self.clock = core, server, bootstrap, clock

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request(method, path, body=body,
                         headers={"User-Agent": BROWSER, **(headers or {})})
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    def events(self, topic: str) -> list[dict[str, Any]]:
        assert self.core.flush(15) == 0
        return [orjson.loads(m.value()) for m in consume_all(self.bootstrap, topic)]


@pytest.fixture
def edge(broker: Any) -> Iterator[Callable[..., Edge]]:
    started: list[TrackServer] = []

    def start(server_kw: dict[str, Any] | None = None, **kw: Any) -> Edge:
        clock = Clock()
        core = TrackCore(broker.bootstrap, LinkKeys.parse(kw.pop("keys", KEYS)), now=clock,
                         **kw)
        server = TrackServer(core, "127.0.0.1", 0, **(server_kw or {})).start()
        started.append(server)
        return Edge(core, server, broker.bootstrap, clock)

    yield start
    for server in started:
        server.stop()


PARSER = EventParser(RecipientHasher(b"test-key"), now=lambda: T0)


def parsed(event: dict[str, Any], topic: str) -> Event:
    ev = PARSER.parse(orjson.dumps(event), topic, 0, 0)
    assert isinstance(ev, Event), ev
    return ev


# --- the three endpoints ------------------------------------------------------------------

def test_click_redirects_to_the_exact_destination_and_emits_a_click(edge: Any) -> None:
    e = edge()
    url = "https://shop.example/p?a=1&b=%2F&utm_source=mail&e=%C3%A9#frag/x?y"
    status, headers, body = e.request("GET", "/c/" + token(url=url))
    assert status == 302 and body == b""
    assert headers["location"] == url
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"
    [event] = e.events("email.clicks")
    ev = parsed(event, "email.clicks")
    assert (ev.type, ev.url, ev.message_id, ev.sender) == ("click", url, "m-1",
                                                          "news.acme.example")
    assert (ev.campaign_id, ev.flow_id, ev.variant) == ("spring", "welcome", "B")
    assert ev.recipient_hash == RECIPIENT and ev.recipient_domain == "gmail.com"
    assert ev.user_agent == BROWSER
    assert ev.ip == "127.0.0.0"  # privacy mode: the /24 only
    assert ev.attrs["is_human"] is True and ev.attrs["bot_reason"] == ""
    assert ev.ts_ms == int(T0 * 1000)


def test_open_pixel_bytes_headers_and_event(edge: Any) -> None:
    e = edge()
    status, headers, body = e.request("GET", "/o/" + token(kind="o", link=-1))
    assert status == 200 and body == PIXEL and len(PIXEL) == 43
    assert headers["content-type"] == "image/gif"
    assert headers["cache-control"] == "no-store"
    [event] = e.events("email.opens")
    ev = parsed(event, "email.opens")
    assert ev.type == "open" and ev.recipient_hash == RECIPIENT and ev.attrs["is_human"]


def test_unsubscribe_get_shows_a_page_and_only_post_unsubscribes(edge: Any) -> None:
    e = edge()
    path = "/u/" + token(kind="u", link=-1)
    for _ in range(2):
        status, headers, body = e.request("GET", path)
        assert status == 200 and b"<form method=post>" in body
        assert b'name="List-Unsubscribe" value="One-Click"' in body
        assert headers["content-type"].startswith("text/html")
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
    status, _, _ = e.request("HEAD", path)
    assert status == 200
    assert e.events("email.unsubscribes") == []
    status, _, body = e.request("POST", path, {"Content-Type": "text/plain"}, b"yes please")
    assert status == 400 and e.events("email.unsubscribes") == []
    status, headers, body = e.request(
        "POST", path, {"Content-Type": "application/x-www-form-urlencoded"},
        b"List-Unsubscribe=One-Click")
    assert status == 200 and b"You are unsubscribed" in body
    assert headers["cache-control"] == "no-store"
    [event] = e.events("email.unsubscribes")
    ev = parsed(event, "email.unsubscribes")
    assert ev.type == "unsubscribe" and ev.recipient_hash == RECIPIENT
    assert ev.campaign_id == "spring"


def test_multipart_one_click_post_unsubscribes(edge: Any) -> None:
    e = edge()
    body = (b'--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            b"One-Click\r\n--b--\r\n")
    status, _, _ = e.request("POST", "/u/" + token(kind="u", link=-1),
                             {"Content-Type": "multipart/form-data; boundary=b"}, body)
    assert status == 200 and len(e.events("email.unsubscribes")) == 1


# --- refusals -------------------------------------------------------------------------------

def _tampered(good: str, seed: int) -> str:
    rng = random.Random(seed)
    chars = list(good)
    i = rng.randrange(20, len(chars) - 50)
    chars[i] = "A" if chars[i] != "A" else "B"
    return "".join(chars)


def test_bad_tokens_never_redirect_and_are_counted_by_reason(edge: Any) -> None:
    e = edge()
    good = token(url="https://shop.example/x")
    cases = {
        "bad_signature": _tampered(good, 1),
        "expired": token(expires=int(T0) - 1),
        "unknown_key": token(keys="k9:other-secret-0123456789abc"),
        "malformed": "not-a-token!",
        "wrong_kind": token(kind="o", link=-1),
    }
    for reason, bad in cases.items():
        status, headers, body = e.request("GET", "/c/" + bad)
        assert status == 400, reason
        assert "location" not in headers
        assert b"href" not in body.lower() and b"<a" not in body.lower()
    _, _, body = e.request("GET", "/c/" + cases["expired"])
    assert b"shop.example" in body  # the host, as plain text
    _, _, metrics = e.request("GET", "/metrics")
    for reason in ("bad_signature", "expired", "unknown_key", "malformed", "wrong_kind"):
        assert f'mailflow_track_refused_total{{reason="{reason}"}}'.encode() in metrics
    assert b'mailflow_track_refused_total{reason="expired"} 2' in metrics
    assert e.events("email.clicks") == []
    dead = e.events("mailflow.dlq")
    assert sorted({d["error"] for d in dead}) == sorted(f"track: {r}" for r in cases)
    # a tampered unsubscribe does nothing either
    status, _, _ = e.request("POST", "/u/" + _tampered(token(kind="u", link=-1), 2),
                             {"Content-Type": "application/x-www-form-urlencoded"},
                             b"List-Unsubscribe=One-Click")
    assert status == 400 and e.events("email.unsubscribes") == []


def test_no_altered_token_ever_redirects(edge: Any) -> None:
    """Every single-character change, truncation and extension of a signed token, and
    hostile bytes in the path: never a redirect, never a 500, the edge stays up."""
    e = edge()
    good = token(url="https://shop.example/x?a=1")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    rng = random.Random(18)
    variants = []
    for i in range(len(good)):
        variants.append(good[:i] + rng.choice(alphabet.replace(good[i], "")) + good[i + 1:])
    variants += [good[:n] for n in range(0, len(good), 7)] + [good + "A", good + "AA",
                                                              good + "%00", good + "/"]
    variants += ["%2e%2e/%2e%2e/etc/passwd", "..%2f..%2f", "A" * 1601, "\u00e9" * 50,
                 "%0d%0aLocation:%20https://evil.example", "https:%2f%2fevil.example"]
    conn = http.client.HTTPConnection("127.0.0.1", e.server.port, timeout=10)
    statuses = set()
    for variant in variants:
        conn.request("GET", "/c/" + urllib.parse.quote(variant, safe="-_%/."),
                     headers={"User-Agent": BROWSER})
        answer = conn.getresponse()
        answer.read()
        assert answer.getheader("Location") is None, variant
        statuses.add(answer.status)
    conn.close()
    assert statuses <= {400, 404}
    assert e.request("GET", "/c/" + good)[0] == 302
    assert e.events("email.clicks") and len(e.events("email.clicks")) == 1


def test_a_retired_key_verifies_within_its_grace_only(edge: Any) -> None:
    old = "k1:first-secret-0123456789"
    e = edge(keys="k2:second-secret-0123456789,k1:first-secret-0123456789:2026-11-01")
    assert e.request("GET", "/c/" + token(keys=old))[0] == 302  # T0 is 2026-11-18
    e.clock.t = T0 + 60 * 86400
    assert e.request("GET", "/c/" + token(keys=old))[0] == 400


def _response(s: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = s.recv(4096)
        assert chunk, "connection closed inside the body"
        body += chunk
    return head


def test_framing_unknown_paths_methods_and_bodies(edge: Any) -> None:
    e = edge()
    assert e.request("GET", "/x/" + token())[0] == 404
    assert e.request("GET", "/c/a/b")[0] == 404
    status, headers, _ = e.request("POST", "/c/" + token())
    assert status == 405 and "GET" in headers["allow"]
    assert e.request("DELETE", "/u/" + token(kind="u", link=-1))[0] == 405
    assert e.request("POST", "/u/x", body=b"x" * 10_000)[0] == 413
    with socket.create_connection(("127.0.0.1", e.server.port), timeout=10) as s:
        s.sendall(b"POST /u/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert _response(s).startswith(b"HTTP/1.1 411")
    with socket.create_connection(("127.0.0.1", e.server.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"y" * 9000 + b"\r\n\r\n")
        assert _response(s).startswith(b"HTTP/1.1 431")
    with socket.create_connection(("127.0.0.1", e.server.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n Folded: x\r\n\r\n")
        assert _response(s).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", e.server.port), timeout=10) as s:
        s.sendall(b"GET http://t.example/healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert _response(s).startswith(b"HTTP/1.1 200")  # absolute-form: its path counts
    with socket.create_connection(("127.0.0.1", e.server.port), timeout=10) as s:
        s.sendall(b"GET /c/" + b"A" * 20_000 + b" HTTP/1.1\r\n\r\n")
        assert _response(s).startswith(b"HTTP/1.1 431")
    with socket.create_connection(("127.0.0.1", e.server.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert b"Connection: keep-alive" in _response(s)
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")  # and then no keep-alive
        assert b"Connection: close" in _response(s)
    with socket.create_connection(("127.0.0.1", e.server.port), timeout=10) as s:
        # two pipelined requests on one keep-alive connection: two answers, in order
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 404" in data


def test_slow_requests_time_out_and_connections_are_capped(edge: Any) -> None:
    e = edge(server_kw={"request_timeout": 0.5, "max_connections": 2})
    with socket.create_connection(("127.0.0.1", e.server.port), timeout=20) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        with socket.create_connection(("127.0.0.1", e.server.port), timeout=20) as second:
            second.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            assert _response(second).startswith(b"HTTP/1.1 200")
            with socket.create_connection(("127.0.0.1", e.server.port), timeout=20) as third:
                assert _response(third).startswith(b"HTTP/1.1 503")
        assert _response(slow).startswith(b"HTTP/1.1 408")
    # read in-process: a fresh connection could still meet the cap while the closed ones
    # are being noticed
    assert "mailflow_track_refused_connections_total 1" in e.core.metrics()


def test_garbage_requests_are_refused_and_the_edge_stays_up(edge: Any) -> None:
    e = edge()
    rng = random.Random(7)
    pieces = [b"GET", b"POST", b" ", b"/", b"/c/", b"/u/", b"HTTP/1.1", b"HTTP/9.9", b"\r\n",
              b":", b"Content-Length: ", b"-1", b"99999999999999999999", b"\x00", b"\xff",
              b"Transfer-Encoding: chunked", b"\t", b"Host: x", b"%", b"\n"]
    for _ in range(60):
        junk = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 12)))
        with socket.create_connection(("127.0.0.1", e.server.port), timeout=10) as s:
            s.sendall(junk + b"\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        assert data == b"" or data.startswith(b"HTTP/1.1 "), junk
        assert not data.startswith(b"HTTP/1.1 5") or data.startswith(b"HTTP/1.1 505"), junk
    assert e.request("GET", "/healthz")[0] == 200


def test_a_client_that_never_reads_its_answers_is_cut_off(edge: Any) -> None:
    e = edge(server_kw={"request_timeout": 0.5, "idle_timeout": 0.5})
    with socket.create_connection(("127.0.0.1", e.server.port), timeout=20) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        request = b"GET /c/" + token().encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        s.settimeout(2.0)
        sent = 0
        try:
            while sent < 64 * 1024 * 1024:  # until the edge stops taking more
                sent += s.send(request * 64)
        except (TimeoutError, ConnectionError):
            pass
        assert e.request("GET", "/healthz")[0] == 200  # everyone else is still served
        s.settimeout(20)
        try:
            while s.recv(1 << 20):
                pass  # what was answered, then the end: the edge cut it off
        except ConnectionError:
            pass
    assert max(len(c.buffer) for c in e.server.connections | {_Idle()}) < 256 * 1024


class _Idle:
    buffer = b""


def test_healthz_and_metrics(edge: Any) -> None:
    e = edge()
    status, _, body = e.request("GET", "/healthz")
    assert status == 200 and orjson.loads(body) == {"status": "ok"}
    e.request("GET", "/c/" + token())
    status, headers, body = e.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert b'mailflow_track_requests_total{endpoint="click"} 1' in body
    assert b'mailflow_track_events_total{type="click",verdict="human"} 1' in body
    assert b"mailflow_track_connections" in body
    # through the public proxy (it adds X-Forwarded-For) the metrics are not served
    assert e.request("GET", "/metrics", {"X-Forwarded-For": "203.0.113.7"})[0] == 404


# --- one event per token and second ---------------------------------------------------------

def test_a_repeated_hit_in_the_same_second_is_one_event_id(edge: Any) -> None:
    e = edge()
    path = "/c/" + token()
    e.request("GET", path)
    e.clock.t = T0 + 0.7  # the same second
    e.request("GET", path)
    e.clock.t = T0 + 1.0  # the next one
    e.request("GET", path)
    ids = [event["event_id"] for event in e.events("email.clicks")]
    assert len(ids) == 3 and ids[0] == ids[1] != ids[2]


# --- bots at the door -----------------------------------------------------------------------

def test_honeypot_hit_redirects_but_is_a_bot_and_marks_the_message_swept(edge: Any) -> None:
    e = edge()
    status, headers, _ = e.request("GET", "/c/" + token(kind="h", link=99,
                                                        url="https://acme.example/trap"))
    assert status == 302 and headers["location"] == "https://acme.example/trap"
    e.clock.t = T0 + 5
    e.request("GET", "/c/" + token(link=0))  # the same message, seconds later
    e.clock.t = T0 + 600
    e.request("GET", "/c/" + token(link=0))  # long after: judged afresh
    verdicts = [(ev["is_human"], ev["bot_reason"]) for ev in e.events("email.clicks")]
    assert verdicts == [(False, "honeypot"), (False, "sweep"), (True, "")]


def test_every_link_sweep_is_a_bot(edge: Any) -> None:
    e = edge()
    for link in range(4):
        e.clock.t = T0 + link * 0.4
        e.request("GET", "/c/" + token(message="m-2", link=link))
    e.clock.t = T0 + 10
    e.request("GET", "/c/" + token(message="m-3", link=0))  # another message: a person
    verdicts = [(ev["message_id"], ev["bot_reason"]) for ev in e.events("email.clicks")]
    assert sorted(verdicts) == [("m-2", ""), ("m-2", ""), ("m-2", "sweep"), ("m-2", "sweep"),
                                ("m-3", "")]


def test_apple_mpp_open_and_scanner_click_verdicts(edge: Any) -> None:
    e = edge()
    e.request("GET", "/o/" + token(kind="o", link=-1), {"User-Agent": "Mozilla/5.0"})
    e.request("GET", "/c/" + token(message="m-5"),
              {"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"})
    e.request("GET", "/c/" + token(message="m-6", issued=int(T0) - 1))  # 1 s after signing
    [opened] = e.events("email.opens")
    assert (opened["is_human"], opened["bot_reason"]) == (False, "apple_proxy")
    reasons = {ev["message_id"]: ev["bot_reason"] for ev in e.events("email.clicks")}
    assert reasons == {"m-5": "scanner_agent", "m-6": "too_fast"}


def test_the_engine_honours_the_edge_hint() -> None:
    tracker = MessageTracker()

    def event(kind: str, attrs: dict[str, Any]) -> Event:
        return Event("", 1_795_000_000_000, kind, "s", "h", "d", "d", "m-1", "", "", "",
                     BROWSER, "84.1.2.3", "", 0, "", "", "", "", 0.0, "", attrs, "", 0, 0)

    assert tracker.apply(event("click", {"is_human": False, "bot_reason": "honeypot"})) \
        == (False, "honeypot", 0.0)
    assert tracker.apply(event("open", {"is_human": False, "bot_reason": "sweep"})) \
        == (False, "sweep", 0.0)
    # other hints (or odd values) leave the engine's own judgement alone
    assert tracker.apply(event("click", {"is_human": False, "bot_reason": "too_fast"})).is_human
    assert tracker.apply(event("click", {"is_human": False, "bot_reason": ["x"]})).is_human
    assert tracker.apply(event("click", {})).is_human


def test_edge_memory_is_bounded() -> None:
    judge = EdgeJudge(max_messages=100, ttl_s=600)
    for i in range(5000):
        judge.judge("click", f"m-{i}", 0, BROWSER, "84.1.2.3", 1000.0 + i * 0.01)
    assert len(judge) == 100 and judge.evicted == 4900
    judge.judge("click", "late", 0, BROWSER, "84.1.2.3", 1000.0 + 10_000)
    assert len(judge) == 1  # the rest expired


# --- privacy --------------------------------------------------------------------------------

def test_forwarded_for_is_believed_from_a_trusted_proxy_only(edge: Any) -> None:
    trusting = edge(trusted_proxies=["127.0.0.1/32"])
    trusting.request("GET", "/c/" + token(message="m-1"),
                     {"X-Forwarded-For": "198.51.100.9, 203.0.113.77"})
    trusting.request("GET", "/o/" + token(kind="o", message="m-2", link=-1),
                     {"X-Forwarded-For": "2001:db8:abcd:12::7"})
    [click] = [ev for ev in trusting.events("email.clicks") if ev["message_id"] == "m-1"]
    [opened] = [ev for ev in trusting.events("email.opens") if ev["message_id"] == "m-2"]
    assert click["ip"] == "203.0.113.0" and opened["ip"] == "2001:db8:abcd::"


def test_forwarded_for_from_anyone_else_is_ignored(edge: Any) -> None:
    e = edge()
    e.request("GET", "/c/" + token(), {"X-Forwarded-For": "203.0.113.77"})
    [click] = e.events("email.clicks")
    assert click["ip"] == "127.0.0.0"


def test_apple_network_is_judged_on_the_whole_ip_before_truncation(edge: Any) -> None:
    e = edge(trusted_proxies=["127.0.0.1"])
    e.request("GET", "/o/" + token(kind="o", link=-1),
              {"X-Forwarded-For": "17.58.1.2", "User-Agent": BROWSER})
    [opened] = e.events("email.opens")
    assert (opened["bot_reason"], opened["ip"]) == ("apple_proxy", "17.58.1.0")


def test_privacy_off_keeps_the_whole_ip(edge: Any) -> None:
    e = edge(privacy=False)
    e.request("GET", "/c/" + token())
    assert e.events("email.clicks")[0]["ip"] == "127.0.0.1"


def test_dnt_and_gpc_opens_are_not_recorded_per_person(edge: Any) -> None:
    e = edge()
    e.request("GET", "/o/" + token(kind="o", link=-1, message="m-1"), {"DNT": "1"})
    e.request("GET", "/o/" + token(kind="o", link=-1, message="m-2"), {"Sec-GPC": "1"})
    e.request("GET", "/o/" + token(kind="o", link=-1, message="m-3"))
    opens = {ev["message_id"]: ev for ev in e.events("email.opens")}
    for message in ("m-1", "m-2"):
        ev = parsed(opens[message], "email.opens")
        assert ev.recipient_hash == "aggregate" and ev.recipient_domain == "gmail.com"
        assert RECIPIENT not in orjson.dumps(opens[message]).decode()
    assert opens["m-3"]["recipient_hash"] == RECIPIENT


def test_aggregate_mode_by_config_and_by_token(edge: Any) -> None:
    modes = {("news.acme.example", "spring"): "aggregate"}
    e = edge(tracking_mode=lambda sender, campaign: modes.get((sender, campaign), "person"))
    e.request("GET", "/c/" + token(message="m-1"))  # the campaign is aggregate
    e.request("GET", "/c/" + token(message="m-2", campaign_id="autumn"))
    e.request("GET", "/c/" + token(message="m-3", campaign_id="autumn",
                                   tracking="aggregate", recipient_hash=""))
    clicks = {ev["message_id"]: ev for ev in e.events("email.clicks")}
    assert clicks["m-1"]["recipient_hash"] == "aggregate"
    assert clicks["m-2"]["recipient_hash"] == RECIPIENT
    assert clicks["m-3"]["recipient_hash"] == "aggregate"
    for ev in clicks.values():
        parsed(ev, "email.clicks")
    # an unsubscribe acts on a person whatever the tracking mode
    e.request("POST", "/u/" + token(kind="u", link=-1),
              {"Content-Type": "application/x-www-form-urlencoded"},
              b"List-Unsubscribe=One-Click")
    assert e.events("email.unsubscribes")[0]["recipient_hash"] == RECIPIENT


def test_an_address_in_the_destination_is_scrubbed_on_the_event(edge: Any) -> None:
    e = edge()
    url = "https://shop.example/welcome?email=ann%40example.org&x=1"
    assert e.request("GET", "/c/" + token(url=url))[1]["location"] == url
    [click] = e.events("email.clicks")
    assert "ann" not in click["url"] and click["url"].endswith("&x=1")


def test_without_kafka_clicks_still_redirect_and_unsubscribes_say_try_again() -> None:
    core = TrackCore("127.0.0.1:1", LinkKeys.parse(KEYS), now=Clock())  # nobody listens
    server = TrackServer(core, "127.0.0.1", 0, ack_timeout=1.0).start()
    e = Edge(core, server, "", Clock())
    try:
        status, headers, _ = e.request("GET", "/c/" + token())
        assert status == 302 and headers["location"].startswith("https://shop.example/")
        status, headers, body = e.request(
            "POST", "/u/" + token(kind="u", link=-1),
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"List-Unsubscribe=One-Click")
        assert status == 503 and b"try again" in body and headers["retry-after"] == "60"
    finally:
        server.stop(flush_timeout=0.5)


# --- starting -------------------------------------------------------------------------------

def test_refuses_to_start_without_keys(tmp_path: Any) -> None:
    proc = mailflow_cmd("track", env={"MAILFLOW_TRACK_KEYS": "", "MAILFLOW_DATA_DIR":
                                      str(tmp_path), "MAILFLOW_KAFKA_BROKERS": "127.0.0.1:1"},
                        check=False, timeout=60)
    assert proc.returncode == 2
    assert "MAILFLOW_TRACK_KEYS" in proc.stderr
    proc = mailflow_cmd("track", env={"MAILFLOW_TRACK_KEYS": "k1:short", "MAILFLOW_DATA_DIR":
                                      str(tmp_path), "MAILFLOW_KAFKA_BROKERS": "127.0.0.1:1"},
                        check=False, timeout=60)
    assert proc.returncode == 2 and "at least 16" in proc.stderr


def test_the_cli_edge_reads_its_config_and_flushes_on_sigterm(broker: Any, tmp_path: Any) -> None:
    config = tmp_path / "mailflow.toml"
    config.write_text('track_trusted_proxies = ["127.0.0.1"]\n[tracking]\n'
                      '"news.acme.example" = "aggregate"\n')
    env = {**os.environ, "MAILFLOW_TRACK_KEYS": KEYS, "MAILFLOW_KAFKA_BROKERS":
           broker.bootstrap, "MAILFLOW_TRACK_PORT": "0", "MAILFLOW_DATA_DIR": str(tmp_path),
           "MAILFLOW_CONFIG": str(config)}
    proc = subprocess.Popen([sys.executable, "-m", "mailflow", "track"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("mailflow track on http://127.0.0.1:"), proc.stderr.read()
        port = int(line.split()[3].rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/c/" + token(issued=int(time.time()) - 60),
                     headers={"User-Agent": BROWSER, "X-Forwarded-For": "203.0.113.9"})
        assert conn.getresponse().status == 302
        conn.close()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    [click] = [orjson.loads(m.value()) for m in consume_all(broker.bootstrap, "email.clicks")]
    assert click["ip"] == "203.0.113.0" and click["recipient_hash"] == "aggregate"
