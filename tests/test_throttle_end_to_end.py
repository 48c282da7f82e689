"""Incident traffic → `mailflow run` → decisions on `mailflow.throttle` and in ClickHouse."""

from __future__ import annotations

from datetime import datetime

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


def slow_burn_events(hours: int, seed: int) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of canonical events: one mid-volume pair whose complaint rate
    climbs from 0.05% to 0.8% over ten hours and stays there, three healthy pairs (0.03%).
    Compressed volumes (200 deliveries an hour a pair), complaints ~25 min after delivery."""
    import random

    from schemas.topics import TOPIC_BY_TYPE

    rng = random.Random(seed)
    start_ms = int(START * 1000)
    pairs = [("burn.example", "gmail.com", lambda h: 0.0005 + 0.0075 * min(h, 10) / 10),
             ("burn.example", "yahoo.com", lambda h: 0.0003),
             ("calm.example", "gmail.com", lambda h: 0.0003),
             ("calm.example", "yahoo.com", lambda h: 0.0003)]
    events, n = [], 0
    for sender, domain, rate in pairs:
        for i in range(200 * hours):
            n += 1
            ts = start_ms + int((i + rng.random()) * 18_000)  # 200 an hour
            base = {"sender": sender, "recipient": f"r{n}@{domain}",
                    "message_id": f"<{n}@{sender}>"}
            events.append((ts, "delivered", base, n))
            if rng.random() < rate((ts - start_ms) / 3_600_000):
                events.append((ts + int(rng.expovariate(1 / 1500) * 1000), "complaint", base, n))
    events.sort(key=lambda e: e[0])
    return [(TOPIC_BY_TYPE[etype], base["recipient"].encode(),
             orjson.dumps({"type": etype, "ts": ts, **base, "event_id": f"sb-{etype}-{n}"}))
            for ts, etype, base, n in events]


def test_slow_burn_over_days_is_slowed_by_the_day_horizon_healthy_pairs_are_not(broker,
                                                                              tmp_path):
    """A mid-volume pair (200 an hour: the hour never holds the 1,000 deliveries it needs)
    burning slowly is slowed within the working day by the 24 h (or 6 h trend) horizon;
    nothing else is touched. Real broker, real chDB, `mailflow run --no-tail`."""
    from mailflow.traffic import EventProducer

    data_dir = tmp_path / "data"
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(data_dir),
           "MAILFLOW_ADMIN_PORT": "0"}
    hours = 36
    producer = EventProducer(broker.bootstrap)
    events = slow_burn_events(hours, seed=14)
    for topic, key, value in events:
        producer.send(topic, key, value)
    producer.flush()
    assert producer.failed == 0 and producer.delivered == len(events)
    mailflow_cmd("run", "--dev", "--no-tail", env=env)

    decisions = [orjson.loads(m.value()) for m in consume_all(broker.bootstrap,
                                                               "mailflow.throttle")]
    assert {f"{d['sender']}|{d['domain']}" for d in decisions} == {"burn.example|gmail.com"}
    first = min(decisions, key=lambda d: d["seq"])
    assert (first["action"], first["reason"]) in {("slow", "complaint_rate"),
                                                   ("slow", "complaint_trend")}
    ev = first["evidence"]
    assert ev["horizon"] in ("24h", "6h") and ev["window_s"] in (86_400, 21_600)
    assert ev["lower_bound"] > 0.001 and ev["complaints"] >= 8
    from datetime import datetime
    at = datetime.fromisoformat(first["event_ts"].replace("Z", "+00:00")).timestamp()
    assert at - START < 16 * 3600  # within the working day of the burn
    # a long horizon only slows, and nothing identical is published twice
    assert all(d["action"] == "slow" for d in decisions)
    ordered = sorted(decisions, key=lambda d: d["seq"])
    assert all((a["action"], a["rate_factor"], a["until"]) != (b["action"], b["rate_factor"],
                                                               b["until"])
               for a, b in zip(ordered, ordered[1:], strict=False))
    stored = query_store(data_dir, "SELECT sender, domain, seq, action, reason "
                                   "FROM mailflow.throttle_decisions FINAL ORDER BY seq")
    assert stored == [(d["sender"], d["domain"], d["seq"], d["action"], d["reason"])
                      for d in ordered]


#: Thresholds nobody reaches: every slow-down and pause needs a billion events.
UNREACHABLE = {name: 10 ** 9 for name in (
    "complaint_min_delivered", "hard_bounce_min_attempts", "block_min", "block_pause_min",
    "rate_limit_min", "block_burst", "rate_limit_burst", "unsubscribe_min_delivered",
    "trend_min_complaints", "complaint_min_events", "hard_bounce_min_events",
    "unsubscribe_min_events", "day_complaint_min_delivered", "day_hard_bounce_min_attempts",
    "day_unsubscribe_min_delivered", "week_complaint_min_delivered",
    "day_trend_min_delivered")}


def test_a_changed_threshold_applies_after_a_restart_with_recovery(broker, tmp_path):
    """The books come back from the snapshot with what they counted; the thresholds they
    judge with are today's configuration, both ways."""
    data_dir = tmp_path / "data"
    lenient = tmp_path / "lenient.toml"
    lenient.write_text("[throttle]\n" + "".join(f"{k} = {v}\n" for k, v in UNREACHABLE.items()))
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(data_dir),
           "MAILFLOW_ADMIN_PORT": "0"}

    def decisions() -> list[dict]:
        return [orjson.loads(m.value()) for m in consume_all(broker.bootstrap,
                                                             "mailflow.throttle")]

    def incident(seed: int, start: float) -> None:
        mailflow_cmd("generate", "--incident", INCIDENT.replace("|", ":"), "--seed", str(seed),
                     "--start", str(start), "--rate", "30", "--seconds", "1200", "--fast",
                     env=env)

    # 1. healthy traffic, default thresholds: books built and snapshotted, no decision
    mailflow_cmd("generate", "--seed", "3", "--start", str(START), "--rate", "30",
                 "--seconds", "900", "--fast", env=env)
    mailflow_cmd("run", "--dev", "--no-tail", env=env)
    assert decisions() == []
    # 2. an incident, restarted with thresholds nobody reaches: still no decision
    incident(4, START + 900)
    mailflow_cmd("run", "--dev", "--no-tail", "--config", str(lenient), env=env)
    assert decisions() == []
    assert (data_dir / "recovery").exists()
    # 3. more of it, restarted with the defaults again: the same books now act
    incident(5, START + 2100)
    mailflow_cmd("run", "--dev", "--no-tail", env=env)
    acted = decisions()
    assert acted and {f"{d['sender']}|{d['domain']}" for d in acted} == {INCIDENT}
    first = min(datetime.fromisoformat(d["event_ts"].replace("Z", "+00:00")) for d in acted)
    assert first.timestamp() >= START + 2100  # on part 3's events, judged by the defaults
