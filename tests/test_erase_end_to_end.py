"""`mailflow erase` end to end: Kafka (Tansu) → `mailflow run --no-tail` → chDB, twice.

A person with a full history (delivery, open, click, conversion, unsubscribe)
goes through the job; `mailflow erase` asks for their erasure; events of theirs
still in flight arrive after it; the job resumes from its recovery snapshot.
Afterwards no ClickHouse row, no recovery snapshot and no latest value of an
output topic mentions their hash, except the suppression entry (kept on purpose).
"""

from __future__ import annotations

import pickle
import sqlite3

import orjson
import pytest

from mailflow.generator import TrafficGenerator
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from schemas.topics import CONTROL, OUTPUT_TOPICS, SEND_TIMES, SUPPRESSIONS
from tests.conftest import consume_all, mailflow_cmd, query_store
from tests.test_end_to_end import produce

pytestmark = pytest.mark.integration

START = 1_795_000_000.0  # 2026-11-18, fixed so the run is reproducible
PERSON = "erase.me@example.org"
SENDER = "news.acme.example"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Safari/604.1"


def event(kind: str, after_s: float, message_id: str = "erase-m1", recipient: str = PERSON,
          **extra: object) -> tuple[str, None, bytes]:
    topic = {"sent": "email.deliveries", "delivered": "email.deliveries"}.get(
        kind, f"email.{kind}s" if kind != "reply" else "email.replies")
    body = {"type": kind, "ts": START + after_s, "sender": SENDER, "recipient": recipient,
            "message_id": message_id, "campaign_id": "c-erase", "flow_id": "welcome", **extra}
    return topic, None, orjson.dumps(body)


def history() -> list[tuple[str, None, bytes]]:
    return [
        event("sent", 9), event("delivered", 10),
        event("open", 600, user_agent=IPHONE, ip="84.1.2.3"),
        event("click", 700, user_agent=IPHONE, ip="84.1.2.3", url="https://shop.example/a"),
        event("conversion", 900, goal="purchase", value=25.0, currency="EUR"),
        event("sent", 999, "erase-m2"), event("delivered", 1000, "erase-m2"),
        event("unsubscribe", 1100, "erase-m2"),
    ]


def mentions(blob: bytes | str, recipient_hash: str) -> bool:
    """The hash, or the 12-character prefix the message keys carry."""
    text = blob if isinstance(blob, bytes) else blob.encode()
    return recipient_hash[:12].encode() in text


def clickhouse_tables(data_dir) -> list[str]:
    # Aggregate states cannot be read back as text: flow_recipients_1h is checked apart.
    return [r[0] for r in query_store(
        data_dir, "SELECT name FROM system.tables WHERE database = 'mailflow' "
                  "AND engine NOT IN ('AggregatingMergeTree', 'MaterializedView')")]


def latest_per_key(bootstrap: str, topic: str) -> dict[bytes | None, bytes | None]:
    latest: dict[bytes | None, bytes | None] = {}
    for msg in consume_all(bootstrap, topic):
        latest[msg.key()] = msg.value()
    return latest


def snapshot_states(data_dir) -> list[tuple[str, bytes]]:
    """(step, serialized state) of the newest snapshot of every state key in recovery."""
    states = []
    for db in sorted((data_dir / "recovery").glob("*.sqlite3")):
        with sqlite3.connect(db) as conn:
            states += conn.execute(
                "SELECT step_id, ser_change FROM snaps s WHERE snap_epoch = (SELECT max("
                "snap_epoch) FROM snaps t WHERE t.step_id = s.step_id AND t.state_key = "
                "s.state_key) AND ser_change IS NOT NULL").fetchall()
    return states


def test_erase_forgets_a_recipient_everywhere_but_the_suppression(broker, tmp_path):
    h = RecipientHasher(DEV_HASH_KEY).recipient(PERSON)
    traffic = [(e.topic, e.key, e.value) for e in
               TrafficGenerator(seed=11, start=START).events(rate=200, seconds=60)]
    produce(broker.bootstrap, traffic + history())
    data_dir = tmp_path / "data"
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(data_dir),
           "MAILFLOW_ADMIN_PORT": "0", "MAILFLOW_EPOCH_INTERVAL_S": "0.5"}
    mailflow_cmd("run", "--dev", "--no-tail", env=env)

    # Before: the person is in every recipient-scoped table, topic and the job's state.
    for table in ("events", "attribution", "send_times", "recipient_profiles", "suppressions"):
        n = query_store(data_dir, f"SELECT count() FROM mailflow.{table} "
                                  f"WHERE recipient_hash = '{h}'")[0][0]
        assert n > 0, table
    assert latest_per_key(broker.bootstrap, SEND_TIMES).get(h.encode())
    assert any(mentions(state, h) for _step, state in snapshot_states(data_dir))
    entered_before = flow_entered(data_dir)

    published = mailflow_cmd("erase", "--dev", "--recipient", PERSON.upper(), env=env)
    assert f'"recipient_hash":"{h}"' in published.stdout
    # In flight: stamped before the erasure, arriving after it. Dropped, not stored.
    late = [event("open", 1200, "erase-m2", user_agent=IPHONE, ip="84.1.2.3"),
            event("delivered", 1300, "other-m1", recipient="someone.else@example.org",
                  flow_id="onboarding")]
    produce(broker.bootstrap, late)
    mailflow_cmd("run", "--dev", "--no-tail", env=env)

    assert_only_the_suppression_names_them(data_dir, broker.bootstrap, h)
    assert query_store(data_dir, "SELECT count() FROM mailflow.events "
                                 "WHERE message_id = 'other-m1'") == [(1,)]
    # The distinct-count rollup no longer counts them: it equals a recount from `events`.
    entered_after = flow_entered(data_dir)
    assert entered_after == recount_entered(data_dir)
    assert entered_after != entered_before

    # The job's recovery state: only the erasure's guard against in-flight events names
    # them (until event time passes the erasure); nothing else does.
    states = snapshot_states(data_dir)
    guarded = 0
    for step, state in states:
        if not mentions(state, h):
            continue
        assert step.endswith("shards"), step  # the recipient's shard, no other state
        shard, held = pickle.loads(pickle.loads(state))
        analytics = held.analytics
        assert analytics._erased == {h: analytics._erased[h]}
        analytics._erased = None
        assert not mentions(pickle.dumps((shard, held)), h)
        guarded += 1
    assert guarded == 1

    # A replay from the beginning (no recovery, a new store) reads the erasure again:
    # whichever comes first, the person's events or the command, the end is the same.
    replay = tmp_path / "replay"
    mailflow_cmd("run", "--dev", "--no-tail", "--no-recovery",
                 env={**env, "MAILFLOW_DATA_DIR": str(replay)})
    assert_only_the_suppression_names_them(replay, broker.bootstrap, h)
    assert query_store(replay, "SELECT count() FROM mailflow.events") == query_store(
        data_dir, "SELECT count() FROM mailflow.events")
    # On disk too: the job vacuums its recovery partitions after an erasure, so no freed
    # SQLite page keeps an old snapshot's bytes (only the live guard above names them).
    for db in sorted((data_dir / "recovery").glob("*.sqlite3")):
        with sqlite3.connect(db) as conn:
            live = [state for (state,) in conn.execute("SELECT ser_change FROM snaps")
                    if state is not None and mentions(state, h)]
        assert mentions(db.read_bytes(), h) == bool(live), db.name


def assert_only_the_suppression_names_them(data_dir, bootstrap: str, h: str) -> None:
    """No ClickHouse row and no latest value of a topic mentions the hash, but the
    suppression (and the erasure command itself)."""
    # ClickHouse: no row anywhere but the suppression.
    for table in clickhouse_tables(data_dir):
        rows = query_store(data_dir, f"SELECT * FROM mailflow.{table}")
        leaked = [row for row in rows if mentions(str(row), h)]
        if table == "suppressions":
            assert [(r[0], r[1]) for r in leaked] == [(h, "unsubscribe")]
        else:
            assert not leaked, f"mailflow.{table} still mentions the hash: {leaked[:2]}"
    # Topics: the latest value per key; send_times has a tombstone for the hash.
    for topic in OUTPUT_TOPICS:
        latest = latest_per_key(bootstrap, topic)
        for key, value in latest.items():
            if value is None:
                continue  # a tombstone: compaction drops it and what it covers
            if topic == SUPPRESSIONS and key == h.encode():
                continue  # the opt-out stays honoured
            if topic == CONTROL:
                continue  # the erasure itself: a replay from the beginning erases again
            assert not mentions((key or b"") + (value or b""), h), (topic, key, value)
    assert latest_per_key(bootstrap, SEND_TIMES)[h.encode()] is None


def flow_entered(data_dir) -> list[tuple]:
    return query_store(data_dir, "SELECT hour, flow_id, sender, uniqExactMerge(entered) "
                                 "FROM mailflow.flow_recipients_1h GROUP BY ALL "
                                 "HAVING uniqExactMerge(entered) > 0 ORDER BY ALL")


def recount_entered(data_dir) -> list[tuple]:
    return query_store(data_dir, "SELECT toStartOfHour(ts) AS hour, flow_id, sender, "
                                 "uniqExactIf(recipient_hash, type = 'delivered') AS entered "
                                 "FROM mailflow.events WHERE flow_id != '' "
                                 "GROUP BY ALL HAVING entered > 0 ORDER BY ALL")
