"""`mailflow serve` and `ThrottleClient` against the real broker: decisions become visible."""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka import Producer

from mailflow.api import ApiServer, DecisionApi
from mailflow.broker import EmbeddedBroker, ensure_topics
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from sinks.client import ThrottleClient

pytestmark = pytest.mark.integration

S = "news.acme.example"
HASHER = RecipientHasher(DEV_HASH_KEY)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def decision(sender, domain, action, factor, seq, until=None, reason="complaint_rate"):
    return {"sender": sender, "domain": domain, "action": action, "rate_factor": factor,
            "until": until, "reason": reason, "evidence": {}, "event_ts": iso(datetime.now(UTC)),
            "decided_at": iso(datetime.now(UTC)), "seq": seq}


def publish(bootstrap: str, topic: str, records: list[tuple[bytes, dict]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value in records:
        producer.produce(topic, orjson.dumps(value), key)
    assert producer.flush(10) == 0


@pytest.fixture(scope="module")
def stack():
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, partitions=3)
        future = iso(datetime.now(UTC) + timedelta(hours=1))
        past = iso(datetime.now(UTC) - timedelta(minutes=1))
        publish(broker.bootstrap, "mailflow.throttle", [
            (b"k", decision(S, "gmail.com", "pause", 0.0, 1, until=future)),
            (b"k", decision(S, "*", "slow", 0.5, 1, reason="block_rate")),
            (b"k", decision("*", "yahoo.com", "slow", 0.25, 1, reason="rate_limit")),
            (b"k", decision("old.example", "outlook.com", "pause", 0.0, 3, until=past)),
            (b"k", decision("seq.example", "gmx.net", "slow", 0.5, 5)),
            (b"k", decision("seq.example", "gmx.net", "pause", 0.0, 4)),  # older: ignored
        ])
        publish(broker.bootstrap, "mailflow.suppressions", [
            (b"k", {"recipient_hash": HASHER.recipient("gone@example.org"),
                    "reason": "hard_bounce", "ts": iso(datetime.now(UTC))})])
        client = ThrottleClient(broker.bootstrap, hash_key=DEV_HASH_KEY).start()
        assert client.wait_ready(30)
        api = DecisionApi(client, tokens=[])
        server = ApiServer(api, port=0).start()
        secured = ApiServer(DecisionApi(ThrottleClient(broker.bootstrap).start(),
                                        tokens=["s3cret", "other"]), port=0).start()
        yield broker, client, server, secured
        server.stop()
        secured.stop()


def get(port: int, path: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def post(port: int, path: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def wait_for(predicate, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def throttle(port: int, **params) -> dict:
    status, body = get(port, "/v1/throttle?" + urllib.parse.urlencode(params))
    assert status == 200, body
    return body


def test_precedence_of_pair_sender_wide_and_provider_wide(stack):
    _broker, _client, server, _ = stack
    port = server.port
    assert throttle(port, sender=S, domain="gmail.com")["action"] == "pause"
    # recipient addresses and alias domains map to the provider key
    assert throttle(port, sender=S, domain="ann@googlemail.com")["key"] == f"{S}|gmail.com"
    sender_wide = throttle(port, sender=S, domain="outlook.com")
    assert (sender_wide["action"], sender_wide["rate_factor"], sender_wide["key"]) == (
        "slow", 0.5, f"{S}|*")
    # at yahoo both the sender-wide 0.5 and the provider-wide 0.25 apply: the lower wins
    assert throttle(port, sender=S, domain="yahoo.com")["rate_factor"] == 0.25
    assert throttle(port, sender="other.example", domain="yahoo.com")["key"] == "*|yahoo.com"
    assert throttle(port, sender="other.example", domain="web.de")["action"] == "allow"


def test_expired_pause_is_the_ramp_and_old_seq_is_ignored(stack):
    port = stack[2].port
    expired = throttle(port, sender="old.example", domain="outlook.com")
    assert (expired["action"], expired["rate_factor"], expired["reason"]) == (
        "slow", 0.25, "pause_expired")
    kept = throttle(port, sender="seq.example", domain="gmx.net")
    assert (kept["action"], kept["seq"]) == ("slow", 5)


def test_batch_lookup(stack):
    port = stack[2].port
    status, body = post(port, "/v1/throttle:batch", orjson.dumps({"items": [
        {"sender": S, "domain": "gmail.com"}, {"sender": S, "domain": "x@yahoo.com"}]}))
    assert status == 200
    assert [r["rate_factor"] for r in body["results"]] == [0.0, 0.25]


def test_suppressions_by_address_and_by_hash(stack):
    port = stack[2].port
    status, body = get(port, "/v1/suppressions/gone@example.org")
    assert status == 200 and body["suppressed"] and body["reason"] == "hard_bounce"
    status, body = get(port, f"/v1/suppressions/{HASHER.recipient('gone@example.org')}")
    assert status == 200 and body["suppressed"]
    status, body = get(port, "/v1/suppressions/fine@example.org")
    assert status == 200 and not body["suppressed"]


def test_client_may_send(stack):
    client = stack[1]
    assert not client.may_send(S, "ann@gmail.com").allowed  # paused
    slowed = client.may_send(S, "bob@outlook.com")
    assert slowed.allowed and slowed.rate_factor == 0.5
    gone = client.may_send("fresh.example", "gone@example.org")
    assert not gone.allowed and gone.suppressed and gone.reason == "suppressed"


def test_new_decisions_arrive_by_server_sent_events(stack):
    broker, client, server, _ = stack
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/v1/decisions/stream")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
    assert resp.readline().startswith(b": connected")
    resp.readline()
    publish(broker.bootstrap, "mailflow.throttle",
            [(b"k", decision("sse.example", "gmail.com", "slow", 0.5, 1))])
    event = resp.readline()
    data = resp.readline()
    assert event == b"event: decision\n"
    assert orjson.loads(data[len(b"data: "):])["sender"] == "sse.example"
    conn.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and client.throttle("sse.example", "gmail.com").seq != 1:
        time.sleep(0.05)
    assert client.throttle("sse.example", "gmail.com").action == "slow"


def test_auth(stack):
    port = stack[3].port
    assert get(port, f"/v1/throttle?sender={S}&domain=gmail.com")[0] == 401
    assert get(port, f"/v1/throttle?sender={S}&domain=gmail.com", token="wrong")[0] == 401
    assert get(port, f"/v1/throttle?sender={S}&domain=gmail.com", token="s3cret")[0] == 200
    assert get(port, "/v1/suppressions/" + "a" * 32, token="other")[0] == 200
    assert get(port, "/healthz")[0] == 200  # probes stay open


@pytest.mark.parametrize("path, message", [
    ("/v1/throttle?domain=gmail.com", "sender is required"),
    (f"/v1/throttle?sender={S}", "domain is required"),
    (f"/v1/throttle?sender={S}&domain=", "domain is required"),
    ("/v1/suppressions/zzz", "32-hex"),
    ("/v1/suppressions/not@an@address", "not an email address"),
    # a control character the OpenAPI pattern forbids (schemathesis, explore mode)
    ("/v1/suppressions/a%7Fb%C2%9D@example.org", "not an email address"),
])
def test_malformed_queries_get_clear_400s(stack, path, message):
    status, body = get(stack[2].port, path)
    assert status == 400 and message in body["error"]


def test_malformed_batches(stack):
    port = stack[2].port
    assert post(port, "/v1/throttle:batch", b"{nope")[0] == 400
    assert post(port, "/v1/throttle:batch", b'{"items": [1]}')[0] == 400
    too_many = orjson.dumps({"items": [{"sender": S, "domain": "a.example"}] * 1001})
    assert post(port, "/v1/throttle:batch", too_many)[0] == 400


def test_readiness_and_metrics(stack):
    port = stack[2].port
    assert get(port, "/readyz") == (200, {"ready": True, "error": None})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
        text = resp.read().decode()
    assert "mailflow_api_decisions " in text and "mailflow_api_ready 1" in text


def test_a_subscriber_that_does_not_read_is_dropped_not_waited_for():
    """The publisher runs on the Kafka consumer thread: a full queue must not block it."""
    api = DecisionApi(ThrottleClient("127.0.0.1:1"), tokens=[], queue_size=4)
    slow, fine = api.subscribe(), api.subscribe()
    done = threading.Event()

    def publish_many():
        for seq in range(10):
            api.publish("decision", {"seq": seq})
            while not fine.queue.empty():  # `fine` keeps reading
                fine.queue.get_nowait()
        done.set()

    threading.Thread(target=publish_many, daemon=True).start()
    assert done.wait(30), "publish blocked on a subscriber that does not read"
    assert slow.dropped.is_set() and not fine.dropped.is_set()
    assert api.subscribers == [fine] and api.dropped_subscribers == 1
    assert "mailflow_api_stream_dropped_total 1" in api.metrics()


def test_subscribers_are_capped():
    api = DecisionApi(ThrottleClient("127.0.0.1:1"), tokens=[], max_subscribers=2)
    assert api.subscribe() is not None and api.subscribe() is not None
    assert api.subscribe() is None


def test_a_stalled_stream_client_does_not_freeze_decisions(stack):
    broker = stack[0]
    client = ThrottleClient(broker.bootstrap).start()
    assert client.wait_ready(30)
    api = DecisionApi(client, tokens=[], queue_size=8)
    server = ApiServer(api, port=0).start()
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(b"GET /v1/decisions/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for(lambda: len(api.subscribers) == 1)
        padding = "x" * 4096  # 3000 x 4 KiB: more than every socket buffer holds
        publish(broker.bootstrap, "mailflow.throttle", [
            (b"stall", {**decision("stall.example", "gmail.com", "slow", 0.5, seq),
                        "evidence": {"pad": padding}}) for seq in range(1, 3001)])
        assert wait_for(lambda: client.throttle("stall.example", "gmail.com").seq == 3000, 60)
        assert wait_for(lambda: api.dropped_subscribers == 1, 60)
        assert get(server.port, "/readyz")[0] == 200
        assert throttle(server.port, sender="stall.example", domain="gmail.com")["seq"] == 3000
    finally:
        stalled.close()
        server.stop()


def test_readyz_is_503_once_the_consumer_is_gone(stack):
    broker = stack[0]
    client = ThrottleClient(broker.bootstrap).start()
    assert client.wait_ready(30)
    server = ApiServer(DecisionApi(client, tokens=[]), port=0).start()
    try:
        assert get(server.port, "/readyz")[0] == 200
        client.close()  # the consumer thread ends: decisions would go stale
        status, body = get(server.port, "/readyz")
        assert status == 503 and body["ready"] is False
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as resp:
            assert "mailflow_api_ready 0" in resp.read().decode()
    finally:
        server.stop()


def test_readyz_is_503_after_a_consumer_error():
    client = ThrottleClient("127.0.0.1:1")
    client._ready.set()  # caught up once, then the consumer failed
    client.error = "KafkaException: broker gone"
    api = DecisionApi(client, tokens=[])
    assert not api.live


def test_readyz_is_503_while_the_broker_is_gone_and_the_thread_runs_on():
    """A consumer thread that is alive but cannot reach Kafka serves stale decisions."""
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, partitions=1)
        client = ThrottleClient(broker.bootstrap).start()
        assert client.wait_ready(30)
        server = ApiServer(DecisionApi(client, tokens=[]), port=0).start()
        try:
            assert get(server.port, "/readyz")[0] == 200
            broker.stop()
            deadline = time.monotonic() + 60  # librdkafka reports within seconds
            while client.failing is None and time.monotonic() < deadline:
                time.sleep(0.2)
            status, body = get(server.port, "/readyz")
            assert client._thread.is_alive()
            assert status == 503 and body["ready"] is False and body["error"]
        finally:
            server.stop()
            client.close()


def test_suppression_lookups_need_tokens_on_a_non_loopback_bind(stack):
    client = stack[1]
    exposed = DecisionApi(client, tokens=[], exposed=True)
    server = ApiServer(exposed, port=0).start()
    try:
        status, body = get(server.port, "/v1/suppressions/gone@example.org")
        assert status == 403 and "MAILFLOW_API_TOKENS" in body["error"]
        assert get(server.port, f"/v1/throttle?sender={S}&domain=gmail.com")[0] == 200
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
    secured = ApiServer(DecisionApi(client, tokens=["t"], exposed=True), port=0).start()
    try:
        assert get(secured.port, "/v1/suppressions/gone@example.org")[0] == 401
        assert get(secured.port, "/v1/suppressions/gone@example.org", token="t")[0] == 200
    finally:
        secured.httpd.shutdown()
        secured.httpd.server_close()


def test_no_secret_in_answers_or_logs(stack, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    port = stack[3].port
    answers = [get(port, "/healthz"), get(port, "/readyz"), get(port, "/v1/throttle", "bad"),
               get(port, "/nope", "s3cret")]
    text = orjson.dumps(answers).decode() + caplog.text
    assert "s3cret" not in text and "other" not in orjson.dumps(answers).decode()


def test_malformed_records_do_not_stop_the_materialisation(stack):
    """A JSON array or a decision with a non-numeric seq on mailflow.throttle used to raise
    on the consumer thread, which then died (and decisions went stale)."""
    broker, client, server, _ = stack
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for raw in (b"[1]", b'{"action": "pause", "seq": "x"}', b'"text"',
                b'{"sender": "m.example", "domain": "gmail.com", "action": "nap", "seq": 1}'):
        producer.produce("mailflow.throttle", raw, b"k")
    producer.produce("mailflow.suppressions", b"[2]", b"k")
    assert producer.flush(10) == 0
    publish(broker.bootstrap, "mailflow.throttle",
            [(b"k", decision("after.example", "gmail.com", "slow", 0.5, 1))])
    assert wait_for(lambda: client.throttle("after.example", "gmail.com").seq == 1)
    assert get(server.port, "/readyz")[0] == 200
    assert client.view.rejected >= 5


@pytest.fixture(scope="module")
def flow_store(tmp_path_factory):
    """A real embedded store with one flow's propensities, forecasts and outcomes."""
    from schemas import rows as out
    from sinks.clickhouse import store_for

    store = store_for(f"chdb://{tmp_path_factory.mktemp('flows') / 'clickhouse'}")
    store.migrate()
    h = RecipientHasher(DEV_HASH_KEY).recipient("ann@example.org")
    day = 20_400
    store.insert("mailflow.flow_propensities",
                 [("welcome", h, 0.25, 1_762_600_000_000, "click", out.iso_day(day), 0.01, "")],
                 out.FLOW_PROPENSITY_COLUMNS)
    store.insert("mailflow.convergence_forecast",
                 [("welcome", out.iso_day(day), 1_762_600_000 + i * 3600, 100, 10 + i,
                   20.0 + i, 0.2 + i / 100, 0.15, 0.25, 0.1, 0.3) for i in range(3)],
                 out.FORECAST_COLUMNS)
    store.insert("mailflow.cohort_outcomes",
                 [("welcome", out.iso_day(day - 9), 80, 12, 0.15, 7, 1_762_000_000)],
                 out.COHORT_OUTCOME_COLUMNS)
    yield store, h
    store.close()


def test_flow_forecast_and_recipient_propensity_endpoints(stack, flow_store):
    from mailflow.flow_api import FlowQueries

    store, h = flow_store
    client = stack[1]
    server = ApiServer(DecisionApi(client, tokens=[], flows=FlowQueries(store.query)),
                       port=0).start()
    try:
        status, body = get(server.port, "/v1/flows/welcome/forecast")
        assert status == 200 and body["flow_id"] == "welcome"
        newest, closed = body["cohorts"]
        assert newest["forecast"]["converged"] == 12  # the latest hour of the cohort
        assert newest["forecast"]["forecast_score"] == pytest.approx(0.22)
        assert closed["outcome"]["score"] == pytest.approx(0.15) and closed["forecast"] is None
        status, body = get(server.port, f"/v1/flows/welcome/recipients/{h}")
        assert status == 200 and body["found"] and body["score"] == pytest.approx(0.25)
        assert get(server.port, "/v1/flows/welcome/recipients/ann@example.org")[1][
            "recipient_hash"] == h
        assert get(server.port, f"/v1/flows/other/recipients/{h}") == (200, {
            "found": False, "flow_id": "other", "recipient_hash": h, "score": None})
        assert get(server.port, "/v1/flows/welcome/recipients/not-a-hash")[0] == 400
        assert get(server.port, "/v1/flows/we'lcome/forecast")[0] == 400
        assert get(server.port, "/v1/flows/welcome/forecast?cohorts=0")[0] == 400
        assert get(server.port, "/v1/flows/welcome/unknown")[0] == 404
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_flow_endpoints_say_when_the_store_cannot_answer_and_guard_personal_data(stack):
    from mailflow.flow_api import FlowQueries, StoreUnavailable

    def down(sql: str):
        raise StoreUnavailable("no job answers on its admin port")

    exposed = ApiServer(DecisionApi(stack[1], tokens=[], exposed=True,
                                    flows=FlowQueries(down)), port=0).start()
    try:
        status, body = get(exposed.port, "/v1/flows/welcome/forecast")
        assert status == 503 and "admin port" in body["error"]
        status, body = get(exposed.port, "/v1/flows/welcome/recipients/" + "a" * 32)
        assert status == 403 and "MAILFLOW_API_TOKENS" in body["error"]
    finally:
        exposed.httpd.shutdown()
        exposed.httpd.server_close()


# -- temporary holds (issue 17: out-of-office replies) ---------------------------------

def suppress(bootstrap: str, address: str, reason: str, until: str | None = None,
             tombstone: bool = False) -> str:
    """One record on mailflow.suppressions, keyed like the job keys it (the hash)."""
    h = HASHER.recipient(address)
    value = None if tombstone else orjson.dumps(
        {"recipient_hash": h, "reason": reason, "ts": iso(datetime.now(UTC)),
         **({"until": until} if until is not None else {})})
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce("mailflow.suppressions", value, h.encode())
    assert producer.flush(10) == 0
    return h


def applied(client: ThrottleClient, count: int):
    """A wait condition: `count` more records were read (held or ignored)."""
    target = client.records + count
    return lambda: client.records >= target


def test_a_hold_blocks_may_send_until_its_end_then_allows(stack):
    from operators.decision_view import parse_until

    broker, client, _, _ = stack
    done = applied(client, 2)
    suppress(broker.bootstrap, "away@example.org", "out_of_office", until="2030-01-07")
    suppress(broker.bootstrap, "meeting@example.org", "out_of_office",
             until="2030-01-07T14:00:00+01:00")
    assert wait_for(done)
    before = parse_until("2030-01-06T23:59:59Z")
    held = client.may_send("fresh.example", "away@example.org", now=before)
    assert (held.allowed, held.rate_factor, held.reason, held.until, held.suppressed,
            held.hold) == (False, 0.0, "out_of_office", "2030-01-07", True, True)
    assert client.suppression("away@example.org", now=before)["reason"] == "out_of_office"
    # the date is the day the person is back: from its start (UTC) the hold is over
    after = parse_until("2030-01-07T00:00:00Z")
    free = client.may_send("fresh.example", "away@example.org", now=after)
    assert (free.allowed, free.suppressed, free.hold, free.until) == (True, False, False, None)
    assert client.suppression("away@example.org", now=after) is None
    assert client.suppression_state("away@example.org", now=after)[1] is False
    # an RFC 3339 until, with its offset: 13:00 UTC
    assert not client.may_send("f.example", "meeting@example.org",
                               now=parse_until("2030-01-07T12:59:00Z")).allowed
    assert client.may_send("f.example", "meeting@example.org",
                           now=parse_until("2030-01-07T13:00:00Z")).allowed


def test_a_permanent_suppression_is_never_weakened_by_a_later_hold(stack):
    from operators.decision_view import parse_until

    broker, client, _, _ = stack
    done = applied(client, 2)
    suppress(broker.bootstrap, "stop@example.org", "reply_unsubscribe")
    suppress(broker.bootstrap, "stop@example.org", "out_of_office", until="2030-01-07")
    assert wait_for(done)
    later = parse_until("2031-01-01")
    verdict = client.may_send("fresh.example", "stop@example.org", now=later)
    assert (verdict.allowed, verdict.reason, verdict.hold, verdict.suppression_reason) == (
        False, "suppressed", False, "reply_unsubscribe")
    assert client.suppression("stop@example.org", now=later)["reason"] == "reply_unsubscribe"
    # the other way round, the permanent suppression replaces the hold
    done = applied(client, 2)
    suppress(broker.bootstrap, "then-stop@example.org", "out_of_office", until="2030-01-07")
    suppress(broker.bootstrap, "then-stop@example.org", "reply_complaint")
    assert wait_for(done)
    verdict = client.may_send("fresh.example", "then-stop@example.org", now=later)
    assert (verdict.allowed, verdict.reason, verdict.suppression_reason) == (
        False, "suppressed", "reply_complaint")


def test_a_tombstone_clears_a_suppression_or_a_hold(stack):
    broker, client, _, _ = stack
    done = applied(client, 2)
    h = suppress(broker.bootstrap, "undo@example.org", "wrong_person")
    suppress(broker.bootstrap, "undo-hold@example.org", "out_of_office", until="2099-01-01")
    assert wait_for(done)
    assert not client.may_send("fresh.example", "undo@example.org").allowed
    assert not client.may_send("fresh.example", "undo-hold@example.org").allowed
    suppress(broker.bootstrap, "undo@example.org", "", tombstone=True)
    suppress(broker.bootstrap, "undo-hold@example.org", "", tombstone=True)
    assert wait_for(lambda: client.suppression_state(h)[0] is None
                    and client.suppression_state("undo-hold@example.org")[0] is None)
    assert client.may_send("fresh.example", "undo@example.org").allowed
    assert client.may_send("fresh.example", "undo-hold@example.org").allowed


def test_suppression_lookup_answers_a_hold_with_its_until(stack):
    broker, client, server, _ = stack
    ahead = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    done = applied(client, 2)
    suppress(broker.bootstrap, "holiday@example.org", "out_of_office", until=ahead)
    suppress(broker.bootstrap, "back@example.org", "out_of_office", until="2001-01-08")
    assert wait_for(done)
    status, body = get(server.port, "/v1/suppressions/holiday@example.org")
    assert status == 200
    assert (body["suppressed"], body["reason"], body["until"], body["expired"]) == (
        True, "out_of_office", ahead, False)
    status, body = get(server.port, "/v1/suppressions/back@example.org")
    assert (body["suppressed"], body["until"], body["expired"]) == (False, "2001-01-08", True)
    status, body = get(server.port, "/v1/suppressions/gone@example.org")  # permanent
    assert (body["suppressed"], body["until"], body["expired"]) == (True, None, False)
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as resp:
        text = resp.read().decode()
    metric = dict(line.rsplit(" ", 1) for line in text.splitlines()
                  if line and not line.startswith("#"))
    # holiday@ holds, back@ has ended; any other test's future holds count as well
    assert int(metric["mailflow_api_suppression_holds"]) >= 1
    assert int(metric["mailflow_api_suppressions"]) >= 1  # the permanent ones
    assert get(server.port, "/readyz")[0] == 200


def test_a_hold_whose_until_is_no_time_is_rejected_and_counted(stack):
    broker, client, _, _ = stack
    rejected = client.view.rejected
    suppress(broker.bootstrap, "odd@example.org", "out_of_office", until="next week")
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce("mailflow.suppressions", b"{not json", b"k")
    assert producer.flush(10) == 0
    assert wait_for(lambda: client.view.rejected >= rejected + 2)
    assert client.suppression_state("odd@example.org")[0] is None
    assert client.live


def test_holds_and_tombstones_arrive_by_server_sent_events(stack):
    # its own client: a DecisionApi takes over its client's on_change, and other tests
    # build APIs on the module's client
    broker = stack[0]
    client = ThrottleClient(broker.bootstrap, hash_key=DEV_HASH_KEY).start()
    assert client.wait_ready(30)
    server = ApiServer(DecisionApi(client, tokens=[]), port=0).start()
    try:
        stream_holds_and_tombstones(broker, server)
    finally:
        server.stop()


def stream_holds_and_tombstones(broker, server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/v1/decisions/stream")
    resp = conn.getresponse()
    assert resp.readline().startswith(b": connected")
    resp.readline()
    h = suppress(broker.bootstrap, "sse-hold@example.org", "out_of_office", until="2099-01-01")
    assert resp.readline() == b"event: suppression\n"
    held = orjson.loads(resp.readline()[len(b"data: "):])
    assert (held["recipient_hash"], held["until"]) == (h, "2099-01-01")
    resp.readline()
    suppress(broker.bootstrap, "sse-hold@example.org", "", tombstone=True)
    assert resp.readline() == b"event: suppression\n"
    assert orjson.loads(resp.readline()[len(b"data: "):]) == {"recipient_hash": h,
                                                               "removed": True}
    conn.close()
