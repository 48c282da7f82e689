"""Incident traffic → `mailflow run` → decisions on `mailflow.throttle` and in ClickHouse."""

from __future__ import annotations

import orjson
import pytest

from operators.bounces import classify_bounce
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from schemas.topics import INPUT_TOPICS
from tests.conftest import consume_all, mailflow_cmd, query_store

pytestmark = pytest.mark.integration

START = 1_795_000_000.0
INCIDENT = "news.acme.example|gmail.com"


def expected_suppressions(values: list[dict]) -> set[str]:
    hasher = RecipientHasher(DEV_HASH_KEY)
    out = set()
    for v in values:
        if v["type"] in ("complaint", "unsubscribe") or (
                v["type"] == "bounce" and classify_bounce(
                    v.get("smtp_code", 0), v.get("smtp_status", ""), v.get("diagnostic", ""),
                    v.get("bounce_kind", "")) == "hard"):
            out.add(hasher.recipient(v["recipient"]))
    return out


def test_incident_pair_is_throttled_healthy_pairs_are_not(broker, tmp_path):
    data_dir = tmp_path / "data"
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(data_dir),
           "MAILFLOW_ADMIN_PORT": "0"}
    # an hour of mail, as fast as possible, reproducible (fixed seed and start)
    mailflow_cmd("generate", "--incident", INCIDENT.replace("|", ":"), "--seed", "5",
                 "--start", str(START), "--rate", "35", "--seconds", "3600", "--fast",
                 env=env)
    events = [m.value() for topic in INPUT_TOPICS for m in consume_all(broker.bootstrap, topic)]
    assert len(events) > 100_000
    mailflow_cmd("run", "--dev", "--no-tail", env=env)

    # What a sending system sees: read every partition with assign(), to the end.
    decisions = [orjson.loads(m.value()) for m in consume_all(broker.bootstrap,
                                                               "mailflow.throttle")]
    keys = {f"{d['sender']}|{d['domain']}" for d in decisions}
    assert keys == {INCIDENT}, keys
    actions = [d["action"] for d in decisions]
    assert "pause" in actions or "slow" in actions
    for d in decisions:
        assert set(d) == {"sender", "domain", "action", "rate_factor", "until", "reason",
                          "evidence", "event_ts", "decided_at", "seq"}
        assert d["action"] in ("allow", "slow", "pause") and 0 <= d["rate_factor"] <= 1
        assert (d["until"] is not None) == (d["action"] == "pause")
    assert sorted(d["seq"] for d in decisions) == list(range(1, len(decisions) + 1))

    stored = query_store(data_dir, "SELECT sender, domain, seq, action, rate_factor, reason "
                                   "FROM mailflow.throttle_decisions FINAL ORDER BY seq")
    assert stored == [(d["sender"], d["domain"], d["seq"], d["action"], d["rate_factor"],
                       d["reason"]) for d in sorted(decisions, key=lambda d: d["seq"])]

    values = [orjson.loads(raw) for raw in events]
    wanted = expected_suppressions(values)
    assert len(wanted) > 20
    published = {m.key().decode() for m in consume_all(broker.bootstrap,
                                                        "mailflow.suppressions")}
    assert wanted <= published, len(wanted - published)
    in_store = {r[0] for r in query_store(data_dir, "SELECT DISTINCT recipient_hash "
                                                    "FROM mailflow.suppressions")}
    assert wanted <= in_store
    # a block is never the address's fault: blocked-only recipients are not suppressed
    blocked = {RecipientHasher(DEV_HASH_KEY).recipient(v["recipient"]) for v in values
               if v["type"] == "bounce" and "S3150" in v.get("diagnostic", "")}
    assert not (blocked - wanted) & published
