"""`GET /v1/routes` (issue 17): the newest classified replies from `mailflow.routes`, for
helpdesks, against the real broker; and `RouteLog`'s bounds."""

from __future__ import annotations

import random
import urllib.error
import urllib.request

import orjson
import pytest
from confluent_kafka import Producer

from mailflow.api import ApiServer, DecisionApi
from mailflow.broker import EmbeddedBroker, ensure_topics
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from schemas.topics import OUTPUT_TOPICS, ROUTES
from sinks.client import RouteLog, ThrottleClient
from tests.test_api import get, wait_for

HASHER = RecipientHasher(DEV_HASH_KEY)
QUEUES = ("sales", "support", "escalation")


def route(i: int, queue: str | None, minute: int | None = None, **extra) -> dict:
    """A record as the job writes it (DESIGN.md `mailflow.routes`)."""
    minute = i if minute is None else minute
    return {"reply_id": f"<r{i}@mail.example>", "message_id": f"m{i}", "sender": "news.acme",
            "recipient_hash": HASHER.recipient(f"p{i}@example.org"), "campaign_id": "c1",
            "flow_id": None, "intent": "interested", "confidence": 0.9,
            "scores": {"interested": 0.9}, "queue": queue, "priority": 2, "auto": False,
            "sentiment": "positive", "urgent": False, "language": "en", "until": None,
            "actions": [], "explanation": ["rule:pricing"], "model": "rules",
            "event_ts": f"2026-12-01T{10 + minute // 60:02d}:{minute % 60:02d}:00Z", **extra}


def produce(bootstrap: str, records: list[tuple[bytes, bytes | None]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value in records:
        producer.produce(ROUTES, value, key)
    assert producer.flush(10) == 0


def publish(bootstrap: str, routes: list[dict]) -> None:
    produce(bootstrap, [(r["reply_id"].encode(), orjson.dumps(r)) for r in routes])


#: 60 routes, minutes 0..59, over the three queues in a seeded shuffle of arrival order
#: (event_ts and arrival disagree: the answer is ordered by event_ts).
ROUTED = [route(i, QUEUES[i % 3]) for i in range(60)]
ARRIVAL = random.Random(17).sample(ROUTED, len(ROUTED))


@pytest.fixture(scope="module")
def stack():
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, partitions=3)
        publish(broker.bootstrap, ARRIVAL)
        client = ThrottleClient(broker.bootstrap, hash_key=DEV_HASH_KEY,
                                routes=RouteLog()).start()
        assert client.wait_ready(30)
        server = ApiServer(DecisionApi(client, tokens=[]), port=0).start()
        yield broker, client, server
        server.stop()


def ids(body: dict) -> list[str]:
    return [r["reply_id"] for r in body["routes"]]


def test_the_routes_topic_is_compacted_so_an_erasure_can_tombstone_a_route():
    assert OUTPUT_TOPICS[ROUTES] == {"cleanup.policy": "compact"}  # one record per reply


def test_routes_read_before_ready_are_all_there_newest_first(stack):
    port = stack[2].port
    # ready means every partition, the routes' too, was read to its end: no waiting
    status, body = get(port, "/v1/routes?limit=1000")
    assert status == 200 and body["queue"] is None and body["order"] == "newest_first"
    assert ids(body) == [f"<r{i}@mail.example>" for i in range(59, -1, -1)]
    assert body["count"] == 60 and body["routes"][0] == ROUTED[59]  # the record as published


def test_queue_filter_limit_and_since(stack):
    port = stack[2].port
    status, body = get(port, "/v1/routes?queue=sales&limit=3")
    assert status == 200 and body["queue"] == "sales"
    assert ids(body) == ["<r57@mail.example>", "<r54@mail.example>", "<r51@mail.example>"]
    status, body = get(port, "/v1/routes?queue=support")
    assert status == 200 and body["count"] == 20
    assert {r["queue"] for r in body["routes"]} == {"support"}
    # since: event_ts at or after it (an offset's + encoded as %2B)
    status, body = get(port, "/v1/routes?queue=escalation&since=2026-12-01T11:50:00%2B01:00")
    assert status == 200 and ids(body) == [f"<r{i}@mail.example>" for i in (59, 56, 53, 50)]
    assert get(port, "/v1/routes?since=2026-12-02")[1]["routes"] == []
    assert get(port, "/v1/routes?queue=nobody")[1] == {
        "queue": "nobody", "count": 0, "order": "newest_first", "routes": []}
    assert get(port, "/v1/routes")[1]["count"] == 60  # at most 100 by default


@pytest.mark.parametrize("query, message", [
    ("limit=0", "limit must be a whole number from 1 to 1000"),
    ("limit=1001", "limit must be"),
    ("limit=-3", "limit must be"),
    ("limit=ten", "limit must be"),
    ("limit=" + "9" * 5000, "limit must be"),
    ("since=yesterday", "since must be an RFC 3339 time"),
    ("since=2026-12-01T10:00:00+01:00", "encode + as %2B"),  # + arrives as a space
    ("queue=", "queue must be 1 to 128 characters"),
    ("queue=a%20b", "queue must be"),
    ("queue=" + "q" * 129, "queue must be"),
    ("queue=sales&queue=support", "queue given twice"),
    ("queues=sales", "unknown parameter 'queues'"),
])
def test_bad_parameters_are_clear_400s(stack, query, message):
    status, body = get(stack[2].port, f"/v1/routes?{query}")
    assert status == 400 and message in body["error"], body


def test_only_get_is_allowed(stack):
    request = urllib.request.Request(f"http://127.0.0.1:{stack[2].port}/v1/routes",
                                     data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405 and refused.value.headers["Allow"] == "GET"


def test_routes_are_personal_data_guarded_like_suppression_lookups(stack):
    client = stack[1]
    exposed = ApiServer(DecisionApi(client, tokens=[], exposed=True), port=0).start()
    try:
        status, body = get(exposed.port, "/v1/routes?queue=sales")
        assert status == 403 and "MAILFLOW_API_TOKENS" in body["error"]
    finally:
        exposed.httpd.shutdown()
        exposed.httpd.server_close()
    for exposed_bind in (False, True):
        secured = ApiServer(DecisionApi(client, tokens=["t0ken"], exposed=exposed_bind),
                            port=0).start()
        try:
            assert get(secured.port, "/v1/routes?queue=sales")[0] == 401
            assert get(secured.port, "/v1/routes?queue=sales", token="wrong")[0] == 401
            status, body = get(secured.port, "/v1/routes?queue=sales", token="t0ken")
            assert status == 200 and body["count"] == 20
        finally:
            secured.httpd.shutdown()
            secured.httpd.server_close()


def test_malformed_route_records_are_skipped_and_counted(stack):
    broker, client, server = stack
    rejected = client.routes.rejected
    bad = [b"not json", b"[1]", b'"text"', orjson.dumps({"reply_id": 7, "queue": "sales"}),
           orjson.dumps({**route(900, "sales"), "queue": ["sales"]}),
           orjson.dumps({**route(901, "sales"), "event_ts": "last tuesday"}),
           orjson.dumps({k: v for k, v in route(902, "sales").items() if k != "event_ts"})]
    produce(broker.bootstrap, [(b"bad", raw) for raw in bad] + [(b"bad", None)])
    # after them, in the same partition (same key): a good one
    produce(broker.bootstrap, [(b"bad", orjson.dumps(route(903, "sales", minute=120)))])
    assert wait_for(lambda: client.routes.rejected >= rejected + len(bad)
                    and "<r903@mail.example>" in client.routes.arrival)
    assert client.routes.rejected == rejected + len(bad)  # the tombstone is no error
    status, body = get(server.port, "/v1/routes?queue=sales&limit=1")
    assert status == 200 and ids(body) == ["<r903@mail.example>"]
    assert get(server.port, "/readyz")[0] == 200 and client.live
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as resp:
        text = resp.read().decode()
    assert f'mailflow_api_rejected_records_total{{topic="routes"}} {rejected + len(bad)}' in text
    assert "mailflow_api_routes 61" in text


def test_a_repeated_reply_replaces_its_route(stack):
    broker, client, server = stack
    publish(broker.bootstrap, [route(904, "sales", minute=121),
                               route(904, "support", minute=121, priority=1)])
    assert wait_for(lambda: client.routes.arrival.get("<r904@mail.example>") == "support")
    assert "<r904@mail.example>" not in ids(get(server.port, "/v1/routes?queue=sales")[1])
    assert ids(get(server.port, "/v1/routes?queue=support&limit=1")[1]) == [
        "<r904@mail.example>"]


def test_an_erasure_takes_the_persons_routes_out_held_and_late(stack):
    from operators.decision_view import parse_time
    from schemas.control import erase_record
    from schemas.topics import CONTROL

    broker, client, server = stack
    h = HASHER.recipient("p3@example.org")
    assert "<r3@mail.example>" in client.routes.arrival
    erasure = erase_record(h, now_s=parse_time("2026-12-01T12:00:00Z"))
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(CONTROL, orjson.dumps(erasure), h.encode())
    producer.produce(CONTROL, b"not a command", b"x")  # the job's dead letter, not ours
    assert producer.flush(10) == 0
    assert wait_for(lambda: "<r3@mail.example>" not in client.routes.arrival)
    # read after the command (one key: one partition, in order): stamped before it,
    # dropped; after it, new data
    produce(broker.bootstrap, [
        (b"h", orjson.dumps({**route(905, "sales", minute=100), "recipient_hash": h})),
        (b"h", orjson.dumps({**route(906, "sales", minute=130), "recipient_hash": h}))])
    assert wait_for(lambda: "<r906@mail.example>" in client.routes.arrival)
    assert "<r905@mail.example>" not in client.routes.arrival and client.routes.erased == 2
    answered = get(server.port, "/v1/routes?limit=1000")[1]["routes"]
    assert [r["reply_id"] for r in answered if r["recipient_hash"] == h] == [
        "<r906@mail.example>"]
    assert client.live


def test_a_tombstone_from_the_job_takes_one_route_out(stack):
    broker, client, _server = stack
    assert "<r4@mail.example>" in client.routes.arrival
    produce(broker.bootstrap, [(b"<r4@mail.example>", None)])
    assert wait_for(lambda: "<r4@mail.example>" not in client.routes.arrival)
    assert client.live


def test_a_server_without_a_route_log_says_so():
    api = DecisionApi(ThrottleClient("127.0.0.1:1"), tokens=[])
    server = ApiServer(api, port=0).start()
    try:
        status, body = get(server.port, "/v1/routes")
        assert status == 503 and "mailflow.routes" in body["error"]
        assert get(server.port, "/v1/routes?limit=0")[0] == 400  # parameters first
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


# -- RouteLog: bounded memory -----------------------------------------------------------

def test_route_log_keeps_the_newest_arrivals_per_queue_and_in_all():
    log = RouteLog(per_queue=3, total=5)
    for i in range(10):
        assert log.apply(route(i, "sales" if i < 6 else "support"))
    # sales kept its last 3 (3, 4, 5); support's arrivals then pushed the total over 5
    # (3 went) and support over 3 (6 went)
    assert list(log.arrival) == [f"<r{i}@mail.example>" for i in (4, 5, 7, 8, 9)]
    assert list(log.by_queue["sales"]) == ["<r4@mail.example>", "<r5@mail.example>"]
    assert list(log.by_queue["support"]) == [f"<r{i}@mail.example>" for i in (7, 8, 9)]
    assert len(log) == 5


def test_route_log_forgets_emptied_queues_and_keeps_null_queues_apart():
    log = RouteLog(per_queue=10, total=2)
    log.apply(route(0, "rare"))
    log.apply(route(1, None))  # a machine reply routed nowhere
    log.apply(route(2, "sales"))
    assert set(log.by_queue) == {None, "sales"}
    newest = orjson.loads(orjson.dumps(log.newest()))
    assert [r["reply_id"] for r in newest] == ["<r2@mail.example>", "<r1@mail.example>"]
    assert orjson.loads(orjson.dumps(log.newest("sales")))[0]["queue"] == "sales"


def test_route_log_orders_by_event_time_then_arrival():
    log = RouteLog()
    rng = random.Random(5)
    minutes = [rng.randrange(5) for _ in range(40)]
    for i, minute in enumerate(minutes):
        log.apply(route(i, "q", minute=minute))
    got = [r["reply_id"] for r in orjson.loads(orjson.dumps(log.newest("q", limit=40)))]
    expected = sorted(range(40), key=lambda i: (minutes[i], i), reverse=True)
    assert got == [f"<r{i}@mail.example>" for i in expected]
