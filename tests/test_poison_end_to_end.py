"""Poison messages in the middle of a stream: the job refuses each one and carries on.

Before, one message that made the parse step raise (a control character before an
address in an unknown field, nesting orjson could not write back) stopped the job for
good: after a restart it read the same message again. Here the real broker carries
good traffic with every kind of poison in between, `mailflow run --no-tail` must exit
0, every good event must be in ClickHouse and every poison one on `mailflow.dlq` with
its reason and position.
"""

from __future__ import annotations

import re

import orjson
import pytest

from mailflow.generator import TrafficGenerator
from tests.conftest import consume_all, mailflow_cmd, query_store
from tests.test_end_to_end import produce

pytestmark = pytest.mark.integration

START = 1_795_000_000.0  # 2026-11-18, fixed so the run is reproducible


def event(n: int, **fields: object) -> dict:
    base = {"type": "bounce", "ts": START + 30 + n, "sender": "news.acme.example",
            "recipient": f"poison{n}@example.org", "message_id": f"poison-{n}",
            "smtp_code": 550, "diagnostic": "550 5.1.1 user unknown"}
    base.update(fields)
    return base


def raw(n: int, tail: bytes, **fields: object) -> bytes:
    """An otherwise valid event with raw JSON text appended as its last field."""
    return orjson.dumps(event(n, **fields))[:-1] + b"," + tail + b"}"


def deep(levels: int) -> bytes:
    text = b"1"
    for level in range(levels):
        text = b"[" + text + b"]" if level % 2 else b'{"k":' + text + b"}"
    return text


# (message, None if it must land as an event, else the DLQ reason prefix)
POISON: list[tuple[bytes | None, str | None]] = [
    # the two reported crash loops: now an event (scrubbed) and a dead letter
    (orjson.dumps(event(1, note="x\npoison1@example.org")), None),
    (raw(2, b'"deep":' + deep(300)), "attrs nested too deep"),
    (raw(3, b'"deep":' + deep(1100)), "not JSON"),
    (raw(4, b'"x":"\xc3\x28\xff"'), "not JSON"),  # invalid UTF-8
    (raw(5, b'"value":1e400'), "not JSON"),  # a number that is infinity
    (raw(6, b'"value":NaN'), "not JSON"),
    (raw(7, b'"x":"\\ud800"'), "not JSON"),  # lone surrogate, escaped
    (raw(8, b'"smtp_code":' + b"9" * 60), "smtp_code must be an integer"),
    (b"\x00\x00\x00", "not JSON"),
    (None, "empty message"),
    (orjson.dumps(event(9, campaign_id="a\x00b", note="\x00")), None),  # null bytes as data
    (raw(10, b'"big":18446744073709551615'), None),  # a huge but valid number
    (orjson.dumps(event(11, recipient_hash="poison11@example.org",
                        recipient_domain="example.org", recipient=None)),
     "recipient_hash holds an address"),
    (orjson.dumps(event(12, type="open", ip="203.0.113.77", user_agent="ua poison12@example.org",
                        campaign_id="c-poison12@example.org",
                        url="https://x.example/?e=poison12%40example.org")), None),
    (orjson.dumps(event(13, recipient="jörg13@bücher.example",
                        diagnostic="550 <jörg13@bücher.example> unknown")), None),
]


def test_poison_messages_go_to_the_dlq_and_the_job_goes_on(broker, tmp_path):
    good = [(e.topic, e.key, e.value) for e in
            TrafficGenerator(seed=5, start=START).events(rate=100, seconds=20)]
    half = len(good) // 2
    poison = [("email.bounces", None, value) for value, _reason in POISON]
    produce(broker.bootstrap, good[:half] + poison + good[half:])

    data_dir = tmp_path / "data"
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(data_dir),
           "MAILFLOW_ADMIN_PORT": "0"}
    mailflow_cmd("run", "--dev", "--no-tail", env=env)  # exit code 0, or it raises

    landing = [value for value, reason in POISON if reason is None]
    refused = [(value, reason) for value, reason in POISON if reason is not None]
    total, distinct = query_store(data_dir, "SELECT count(), uniqExact(event_id) "
                                            "FROM mailflow.events")[0]
    assert (total, distinct) == (len(good) + len(landing),) * 2
    stored = {r[0] for r in query_store(data_dir, "SELECT message_id FROM mailflow.events "
                                                  "WHERE message_id LIKE 'poison-%'")}
    assert stored == {orjson.loads(v)["message_id"] for v in landing}

    dlq = [(m.key(), orjson.loads(m.value())) for m in
           consume_all(broker.bootstrap, "mailflow.dlq")]
    assert len(dlq) == len(refused)
    for value, reason in refused:
        text = (value or b"").decode("utf-8", "replace")
        matches = [d for _key, d in dlq if d["raw"] == text[:len(d["raw"])]
                   and d["error"].startswith(reason)]
        assert matches, (reason, text[:80], [d["error"] for _k, d in dlq])
    for key, record in dlq:
        assert record["topic"] == "email.bounces"
        assert key == f"email.bounces:{record['partition']}:{record['offset']}".encode()

    # what landed from the poison list is scrubbed, and the reader's IP is a network
    rows = query_store(data_dir, "SELECT message_id, user_agent, campaign_id, url, ip, "
                                 "diagnostic, attrs FROM mailflow.events "
                                 "WHERE message_id LIKE 'poison-%'")
    dump = "\n".join(str(row) for row in rows)
    assert not re.search(r"poison\d+(@|%40)example\.org|jörg13|jö", dump), dump
    by_id = {row[0]: row for row in rows}
    assert by_id["poison-12"][4] == "203.0.113.0"
    assert by_id["poison-12"][1].startswith("ua hash:")
    assert "hash:" in by_id["poison-1"][6] and "hash:" in by_id["poison-13"][5]
    ips = {r[0] for r in query_store(data_dir, "SELECT DISTINCT ip FROM mailflow.events")}
    assert all(ip == "" or ip.endswith(".0") or ip.endswith("::") for ip in ips), ips
