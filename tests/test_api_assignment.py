"""Control groups for sending systems: `ThrottleClient.may_send(flow_id=...)` and
`GET /v1/assignment` against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka import Producer

from mailflow.api import OPENAPI, ApiServer, DecisionApi
from mailflow.broker import EmbeddedBroker, ensure_topics
from schemas.assignment import Assigner
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from sinks.client import ThrottleClient
from tests.test_api import get

pytestmark = pytest.mark.integration

S = "news.acme.example"
HASHER = RecipientHasher(DEV_HASH_KEY)
ASSIGNER = Assigner(DEV_HASH_KEY, "control-1", 1, global_share=0.3, flow_share=0.5,
                    flow_shares={"onboarding": 0.2}, transactional=frozenset({"receipts"}))


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def first(group: str, domain: str = "example.org", flow: str = "welcome") -> str:
    """The first address p<i>@domain in `group` for `flow` (the split is deterministic)."""
    for i in range(10_000):
        address = f"p{i}@{domain}"
        if ASSIGNER.assign(address, flow).group == group:
            return address
    raise AssertionError(group)


GLOBAL, FLOW, TREATED = first("global"), first("flow"), first("treated")
SUPPRESSED_FLOW = first("flow", "suppressed.example")  # held out, but suppressed
HELD_GLOBAL = first("global", "away.example")  # held out, but on an out-of-office hold
PAUSED_FLOW = first("flow", "gmail.com")  # held out, but the sender is paused at gmail
SLOW_FLOW, SLOW_TREATED = first("flow", "outlook.com"), first("treated", "outlook.com")


def publish(bootstrap: str, topic: str, records: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in records:
        producer.produce(topic, orjson.dumps(value), b"k")
    assert producer.flush(10) == 0


def decision(domain: str, action: str, factor: float, until: str | None = None) -> dict:
    now = iso(datetime.now(UTC))
    return {"sender": S, "domain": domain, "action": action, "rate_factor": factor,
            "until": until, "reason": "complaint_rate", "evidence": {}, "event_ts": now,
            "decided_at": now, "seq": 1}


@pytest.fixture(scope="module")
def stack():
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, partitions=1)
        now = datetime.now(UTC)
        publish(broker.bootstrap, "mailflow.throttle", [
            decision("gmail.com", "pause", 0.0, until=iso(now + timedelta(hours=1))),
            decision("outlook.com", "slow", 0.5)])
        publish(broker.bootstrap, "mailflow.suppressions", [
            {"recipient_hash": HASHER.recipient(SUPPRESSED_FLOW), "reason": "hard_bounce",
             "ts": iso(now)},
            {"recipient_hash": HASHER.recipient(HELD_GLOBAL), "reason": "out_of_office",
             "ts": iso(now), "until": iso(now + timedelta(days=3))}])
        client = ThrottleClient(broker.bootstrap, hash_key=DEV_HASH_KEY,
                                assigner=ASSIGNER).start()
        assert client.wait_ready(30)
        server = ApiServer(DecisionApi(client, tokens=[]), port=0).start()
        yield broker, client, server
        server.stop()


def assignment(port: int, **params) -> tuple[int, dict]:
    return get(port, "/v1/assignment?" + urllib.parse.urlencode(params))


# -- may_send ---------------------------------------------------------------------------

def test_a_recipient_in_a_control_group_is_held_out_with_its_group(stack):
    client = stack[1]
    for address, group in ((GLOBAL, "global"), (FLOW, "flow")):
        verdict = client.may_send(S, address, flow_id="welcome")
        assert (verdict.allowed, verdict.rate_factor, verdict.reason, verdict.group,
                verdict.suppressed) == (False, 0.0, "holdout", group, False)
    sent = client.may_send(S, TREATED, flow_id="welcome")
    assert (sent.allowed, sent.reason, sent.group) == (True, "no_decision", "treated")


def test_the_global_control_group_gets_no_marketing_outside_flows_either(stack):
    client = stack[1]
    assert client.may_send(S, GLOBAL, flow_id="").group == "global"
    assert client.may_send(S, FLOW, flow_id="").allowed  # a flow holdout, not global


def test_transactional_flows_are_always_sent(stack):
    client = stack[1]
    for address in (GLOBAL, FLOW):
        verdict = client.may_send(S, address, flow_id="receipts")
        assert verdict.allowed and verdict.group == "treated"


def test_without_a_flow_id_nothing_changes(stack):
    verdict = stack[1].may_send(S, GLOBAL)
    assert verdict.allowed and verdict.group is None and verdict.reason == "no_decision"


def test_suppressions_holds_and_pauses_win_over_a_holdout(stack):
    """A suppressed recipient must never be mailed, and a holdout is recorded only for
    someone who would have been mailed: so the holdout is answered last."""
    client = stack[1]
    assert ASSIGNER.assign(SUPPRESSED_FLOW, "welcome").holdout
    suppressed = client.may_send(S, SUPPRESSED_FLOW, flow_id="welcome")
    assert (suppressed.allowed, suppressed.reason, suppressed.suppressed,
            suppressed.group) == (False, "suppressed", True, None)
    held = client.may_send(S, HELD_GLOBAL, flow_id="welcome")
    assert (held.allowed, held.reason, held.hold, held.group) == (
        False, "out_of_office", True, None)
    paused = client.may_send(S, PAUSED_FLOW, flow_id="welcome")
    assert (paused.allowed, paused.action, paused.reason, paused.group) == (
        False, "pause", "complaint_rate", None)


def test_a_slowed_send_is_held_out_too_and_the_treated_keep_the_rate(stack):
    client = stack[1]
    out = client.may_send(S, SLOW_FLOW, flow_id="welcome")
    assert (out.allowed, out.reason, out.group, out.rate_factor) == (
        False, "holdout", "flow", 0.0)
    sent = client.may_send(S, SLOW_TREATED, flow_id="welcome")
    assert (sent.allowed, sent.rate_factor, sent.group) == (True, 0.5, "treated")


def test_a_holdout_decision_needs_an_address(stack):
    with pytest.raises(ValueError, match="address"):
        stack[1].may_send(S, "gmail.com", flow_id="welcome")
    assert stack[1].may_send(S, "gmail.com").action == "pause"  # as before without a flow


def test_a_client_with_only_an_assigner_checks_suppressions_by_address(stack):
    client = ThrottleClient(stack[0].bootstrap, assigner=ASSIGNER).start()
    try:
        assert client.wait_ready(30)
        assert client.may_send(S, SUPPRESSED_FLOW, flow_id="welcome").reason == "suppressed"
        assert client.may_send(S, FLOW, flow_id="welcome").reason == "holdout"
    finally:
        client.close()


def test_an_assigner_under_another_key_is_refused():
    other = Assigner(b"another key", "control-1", 1, 0.1, 0.1)
    with pytest.raises(ValueError, match="MAILFLOW_HASH_KEY"):
        ThrottleClient("127.0.0.1:1", hash_key=DEV_HASH_KEY, assigner=other)


# -- GET /v1/assignment -------------------------------------------------------------------

def test_the_endpoint_answers_by_address_and_by_hash_alike(stack):
    port = stack[2].port
    status, body = assignment(port, recipient=FLOW, flow="welcome")
    assert status == 200
    assert body == {"recipient_hash": HASHER.recipient(FLOW), "flow_id": "welcome",
                    "group": "flow", "holdout": True, "version": "v1:control-1",
                    "global_share": 0.3, "flow_share": 0.5, "transactional": False}
    h = HASHER.recipient(FLOW)
    assert assignment(port, recipient=h, flow="welcome") == (200, body)
    assert assignment(port, recipient=h.upper(), flow="welcome") == (200, body)
    assert assignment(port, recipient_hash=h, flow="welcome") == (200, body)
    assert assignment(port, recipient=FLOW.upper(), flow="welcome") == (200, body)


def test_the_endpoint_without_a_flow_is_the_global_decision(stack):
    port = stack[2].port
    _, body = assignment(port, recipient=GLOBAL)
    assert (body["flow_id"], body["group"], body["holdout"], body["flow_share"]) == (
        "", "global", True, 0.0)
    _, body = assignment(port, recipient=FLOW)
    assert (body["group"], body["holdout"]) == ("treated", False)


def test_the_endpoint_reports_overrides_and_transactional_flows(stack):
    port = stack[2].port
    assert assignment(port, recipient=TREATED, flow="onboarding")[1]["flow_share"] == 0.2
    _, body = assignment(port, recipient=GLOBAL, flow="receipts")
    assert (body["group"], body["holdout"], body["flow_share"], body["transactional"]) == (
        "treated", False, 0.0, True)


def test_the_endpoint_agrees_with_may_send(stack):
    client, port = stack[1], stack[2].port
    for address in (GLOBAL, FLOW, TREATED):
        _, body = assignment(port, recipient=address, flow="welcome")
        assert body["group"] == client.may_send(S, address, flow_id="welcome").group


def test_assignments_are_counted(stack):
    api = stack[2].api
    before = api.counts["assignments"]
    assignment(stack[2].port, recipient=TREATED)
    assert f"mailflow_api_assignments_total {before + 1}" in api.metrics()
    assert 'endpoint="assignment"' in api.metrics()


@pytest.mark.parametrize("query, message", [
    ("flow=welcome", "recipient is required"),
    ("recipient=&flow=welcome", "recipient is required"),
    ("recipient=not@an@address", "not an email address"),
    ("recipient=ann%20x@example.com", "not an email address"),
    ("recipient=zzz", "32-hex"),
    ("recipient_hash=ann@example.com", "recipient_hash must be 32 hex digits"),
    (f"recipient=a@b.example&recipient_hash={'0' * 32}", "not both"),
    ("recipient=a@b.example&recipient=c@d.example", "given twice"),
    ("recipient=a@b.example&flow=", "flow must be"),
    ("recipient=a@b.example&flow=a%20b", "flow must be"),
    ("recipient=a@b.example&flow=welcome%0A", "flow must be"),
    ("recipient=a@b.example&flows=x", "unknown parameter"),
])
def test_bad_queries_get_clear_400s(stack, query, message):
    status, body = get(stack[2].port, "/v1/assignment?" + query)
    assert status == 400 and message in body["error"]


def test_the_endpoint_has_the_suppression_look_ups_auth(stack):
    client = stack[1]
    secured = ApiServer(DecisionApi(client, tokens=["s3cret"]), port=0).start()
    exposed = ApiServer(DecisionApi(client, tokens=[], exposed=True), port=0).start()
    try:
        path = f"/v1/assignment?recipient={FLOW}&flow=welcome"
        assert get(secured.port, path)[0] == 401
        assert get(secured.port, path, token="wrong")[0] == 401
        assert get(secured.port, path, token="s3cret")[0] == 200
        status, body = get(exposed.port, path)
        assert status == 403 and "MAILFLOW_API_TOKENS" in body["error"]
    finally:
        for server in (secured, exposed):
            server.httpd.shutdown()
            server.httpd.server_close()


def test_without_an_assigner_the_endpoint_says_what_is_missing(stack):
    client = ThrottleClient(stack[0].bootstrap, hash_key=DEV_HASH_KEY)  # not started
    server = ApiServer(DecisionApi(client, tokens=[]), port=0).start()
    try:
        status, body = assignment(server.port, recipient=FLOW)
        assert status == 503 and "MAILFLOW_HASH_KEY" in body["error"]
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_the_endpoint_is_get_only_and_documented(stack):
    request = urllib.request.Request(f"http://127.0.0.1:{stack[2].port}/v1/assignment",
                                     data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405 and refused.value.headers["Allow"] == "GET"
    operation = OPENAPI["paths"]["/v1/assignment"]["get"]
    assert {"200", "400", "401", "403", "503"} <= set(operation["responses"])
    assert OPENAPI["components"]["schemas"]["Assignment"]["required"] == [
        "recipient_hash", "flow_id", "group", "holdout", "version", "global_share",
        "flow_share", "transactional"]


# -- mailflow serve ---------------------------------------------------------------------

def serve_env(bootstrap: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}
    env.update(MAILFLOW_KAFKA_BROKERS=bootstrap, MAILFLOW_LOG_FORMAT="text", **settings)
    return env


def test_serve_assigns_with_the_configured_shares_salt_and_key(stack, tmp_path):
    """The real verb: settings from the environment and the config file reach the answer."""
    (tmp_path / "mailflow.toml").write_text('[holdouts]\nonboarding = 0.2\n')
    env = serve_env(stack[0].bootstrap, MAILFLOW_HASH_KEY=DEV_HASH_KEY.decode(),
                    MAILFLOW_GLOBAL_CONTROL_SHARE="0.3", MAILFLOW_HOLDOUT_SHARE="0.5",
                    MAILFLOW_TRANSACTIONAL_FLOWS="receipts")
    proc = subprocess.Popen([sys.executable, "-m", "mailflow", "serve", "--port", "0"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # printed once listening
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        for address in (GLOBAL, FLOW, TREATED):
            # the same settings as the in-process ASSIGNER: the same answers
            assert assignment(port, recipient=address, flow="welcome") == assignment(
                stack[2].port, recipient=address, flow="welcome")
        assert assignment(port, recipient=FLOW, flow="onboarding")[1]["flow_share"] == 0.2
        assert assignment(port, recipient=GLOBAL, flow="receipts")[1]["holdout"] is False
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_serve_refuses_a_share_of_one_or_more(tmp_path):
    env = serve_env("127.0.0.1:1", MAILFLOW_HASH_KEY="k" * 32,
                    MAILFLOW_GLOBAL_CONTROL_SHARE="5")  # 5%, written as a percentage
    done = subprocess.run([sys.executable, "-m", "mailflow", "serve", "--port", "0"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "MAILFLOW_GLOBAL_CONTROL_SHARE" in done.stderr and "e.g. 0.05" in done.stderr
