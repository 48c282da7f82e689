"""The erase path in pieces: the command line, control messages, and each dataflow step's
share of an erasure (the whole path runs in tests/test_erase_end_to_end.py)."""

from __future__ import annotations

import orjson
import pytest

from flows.outputs import BatchRowsLogic
from flows.parse import parse_controls
from flows.settings import load_settings
from flows.shards import ERASABLE, ShardInput, ShardLogic
from flows.sources import CaughtUp, RawMessage
from mailflow.cli import main
from schemas.control import EraseCommand, Erasure, erase_record, parse_control
from schemas.events import DeadLetter, Event
from schemas.rows import TABLE_COLUMNS
from schemas.topics import CONTROL, SEND_TIMES
from tests.conftest import mailflow_cmd

T0 = 1_795_000_000_000


def event(recipient: str, ts_ms: int, kind: str = "delivered", message_id: str = "m1",
          offset: int = 0) -> Event:
    return Event(f"e{offset}", ts_ms, kind, "news.acme.example", recipient, "gmail.com",
                 "gmail.com", message_id, "c", "welcome", "", "Mozilla/5.0 Safari/604.1",
                 "84.1.2.3", "", 0, "", "", "", "", 0.0, "", {}, "email.deliveries", 0, offset)


def test_help_says_what_is_erased_and_what_is_kept(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["erase", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--recipient ADDRESS" in out and "--hash H" in out
    assert "suppression entry" in out and "kept:" in out and "erased:" in out


def test_erase_needs_a_recipient_and_a_hash_key(tmp_path):
    env = {"MAILFLOW_DATA_DIR": str(tmp_path), "MAILFLOW_KAFKA_BROKERS": "127.0.0.1:1",
           "MAILFLOW_HASH_KEY": ""}
    proc = mailflow_cmd("erase", env=env, check=False, timeout=60)
    assert proc.returncode == 2 and "--recipient" in proc.stderr
    proc = mailflow_cmd("erase", "--recipient", "ann@example.com", env=env, check=False,
                        timeout=60)
    assert proc.returncode == 2 and "MAILFLOW_HASH_KEY" in proc.stderr


def test_control_messages_are_commands_or_dead_letters_never_events():
    good = orjson.dumps(erase_record("abc", now_s=1_795_000_000))
    an_event = orjson.dumps({"type": "open", "ts": 1_795_000_000, "sender": "s",
                             "recipient": "ann@example.com", "message_id": "m"})
    batches = parse_controls([
        RawMessage(good, CONTROL, 0, 0, ""), CaughtUp(CONTROL, 0),
        RawMessage(an_event, CONTROL, 0, 1, ""), RawMessage(b"{not json", CONTROL, 0, 2, ""),
        RawMessage(orjson.dumps({"command": "erase"}), CONTROL, 0, 3, ""),
        RawMessage(orjson.dumps({"command": "erase", "recipient_hash": "abc", "ts": "soon"}),
                   CONTROL, 0, 4, ""),
        RawMessage(None, CONTROL, 0, 5, "Broker: corrupt message"),
    ])
    assert len(batches) == 1
    erasures, dead = batches[0]
    assert erasures == [EraseCommand("abc", 1_795_000_000_000, "2026-11-18T11:06:40.000Z",
                                     CONTROL, 0, 0)]
    assert [(d.offset, d.error.split(":")[0]) for d in dead] == [
        (1, "unknown command"), (2, "control message is not JSON"),
        (3, "erase needs recipient_hash (a string)"), (4, "erase"), (5, "kafka error")]
    assert all(isinstance(d, DeadLetter) and d.topic == CONTROL for d in dead)
    assert parse_controls([CaughtUp(CONTROL, 0)]) == []


def test_a_command_without_ts_covers_everything_up_to_now():
    cmd = parse_control(b'{"command": "erase", "recipient_hash": " abc "}', CONTROL, 0, 0)
    assert cmd.recipient_hash == "abc" and cmd.up_to_ms > T0


PARTS = ["email.deliveries/0", "email.opens/0"]


def test_the_shard_drops_held_and_queued_events_and_tells_every_table_topic_and_merge():
    logic = ShardLogic(load_settings(environ={}), PARTS, True, None)
    held = [(event("h1", T0 + 1), None), (event("h2", T0 + 2, offset=1), None),
            (event("h1", T0 + 9_000_000, offset=2), None)]  # after the erasure: kept
    out, _ = logic.on_batch([ShardInput("0001", held, [], {"email.deliveries/0": T0 + 3}, [],
                                        [])])
    assert logic.state.events.held == 3  # email.opens/0 has shown nothing yet: all wait
    erase = EraseCommand("h1", T0 + 5_000_000, "")
    out, _ = logic.on_batch([ShardInput("0001", [], [], {}, [], [erase])])
    (result,) = out
    tables = {table: item for table, item in result.tables}
    assert tables == {t: Erasure("h1", TABLE_COLUMNS[t].index("recipient_hash"))
                      for t in ERASABLE}
    assert set(ERASABLE) == {"mailflow.events", "mailflow.attribution", "mailflow.send_times",
                             "mailflow.replies",
                             "mailflow.recipient_profiles", "mailflow.flow_propensities"
                             }  # never mailflow.suppressions
    tombstone, *journeys = result.kafka
    assert (tombstone.topic, tombstone.key, tombstone.value) == (SEND_TIMES, b"h1", None)
    assert all(m.value is None and m.key.endswith(b"|h1") for m in journeys)
    # every merge hears of it (convergence membership in the sums; pending labels and,
    # through the models, personas)
    assert {key for key, _m in result.merges} == {*(f"agg:{i}" for i in range(8)), "models"}
    assert all(m.facts[0][2].recipient_hash == "h1" for _key, m in result.merges)
    (final,) = logic.on_eof()[0]
    applied = [row for table, rows in final.tables if table == "mailflow.events" for row in rows]
    assert len(applied) == 2  # h2, and h1's event after the erasure
    assert logic.state.analytics.erased_dropped == 0


def test_buffered_rows_of_the_erased_recipient_are_never_written():
    logic = BatchRowsLogic(max_rows=100, max_age_s=60)
    erasure = Erasure("h1", 1)
    ready, _ = logic.on_batch([[("a", "h1"), ("b", "h2")], erasure, [("c", "h1")]])
    assert ready == [erasure]  # the row after the erasure is newer data: kept
    assert logic.batcher.flush() == [[("b", "h2"), ("c", "h1")]]
