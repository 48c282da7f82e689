"""flows/parse.py: the bounce classifier learns per input partition in the keyed `classify`
step, keeps what it learnt across a restart, and answers the same however the partitions'
batches interleave (so for 1 worker, 4 workers or 2 processes)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable

import orjson
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.parse import BatchParser, ClassifyLogic, ParseAndClassify, PartitionBatch
from flows.pipeline import FlowIO, build_flow
from flows.settings import load_settings
from flows.sources import CaughtUp, RawMessage
from operators.bounces import BounceClassifier, BounceVerdict
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from tests.test_bounces import REAL_REPLIES, UNSEEN

HASHER = RecipientHasher(DEV_HASH_KEY)
NOW = 1_795_255_203.0  # 2026-11-21T10:00:03Z
TS_MS = 1_795_255_000_000
TRAINED, UNTRAINED = ("email.bounces", 0), ("email.bounces", 1)
PROBE = UNSEEN[0]  # wording no pattern or status code decides: only a trained model does


def bounce(where: tuple[str, int], offset: int, reply: tuple) -> RawMessage:
    code, status, diagnostic = reply[:3]
    value = orjson.dumps({"type": "bounce", "ts": (TS_MS + offset * 1000) / 1000,
                          "sender": "news.acme.example",
                          "recipient": f"user{where[1]}-{offset}@example.org",
                          "message_id": f"m-{where[1]}-{offset}", "smtp_code": code,
                          "smtp_status": status, "diagnostic": diagnostic})
    return RawMessage(value, where[0], where[1], offset, "")


def stream(where: tuple[str, int], replies: list[tuple]) -> list[RawMessage]:
    return [bounce(where, offset, reply) for offset, reply in enumerate(replies)]


def parsed(messages: list) -> PartitionBatch:
    parse = BatchParser(HASHER)
    parse.parser.now = lambda: NOW
    [(_key, batch)] = parse(messages)
    return batch


def one_classifier() -> Callable[[], BounceClassifier]:
    """The same classifier for every partition (what the parse step had before)."""
    shared = BounceClassifier()
    return lambda: shared


def verdicts(logic: ClassifyLogic, batch: PartitionBatch) -> list[BounceVerdict]:
    [out], retain = logic.on_batch([batch])
    assert retain is ClassifyLogic.RETAIN
    return [verdict for _ev, verdict in out.events]


# the training partition: pattern-certain replies, then the probe
TRAINING = stream(TRAINED, REAL_REPLIES)
PROBE_MSG = bounce(TRAINED, len(REAL_REPLIES), PROBE)


def test_a_resumed_classify_step_keeps_what_it_learnt():
    logic = ClassifyLogic(True, None)
    verdicts(logic, parsed(TRAINING))
    [before] = verdicts(logic, parsed([PROBE_MSG]))
    assert (before.bounce_class, before.source) == (PROBE[3], "model")

    resumed = ClassifyLogic(True, logic.snapshot())
    assert resumed.bounces.n_learned == logic.bounces.n_learned
    assert verdicts(resumed, parsed([PROBE_MSG])) == [before]
    # and without the state the answer is another: the test sees a lost state
    [fresh] = verdicts(ClassifyLogic(True, None), parsed([PROBE_MSG]))
    assert fresh != before and fresh.source != "model"


def test_a_snapshot_is_built_only_when_a_wording_was_learnt():
    logic = ClassifyLogic(True, None)
    first = logic.snapshot()
    assert logic.snapshot() is first  # nothing learnt: the cached bytes
    verdicts(logic, parsed(TRAINING[:10]))
    second = logic.snapshot()
    assert second is not first and logic.snapshot() is second
    verdicts(logic, parsed([bounce(TRAINED, 100 + i, REAL_REPLIES[i]) for i in range(10)]))
    verdicts(logic, parsed([PROBE_MSG]))  # known wordings, and a guess: nothing learnt
    assert logic.snapshot() is second
    resumed = ClassifyLogic(True, second)
    assert resumed.snapshot() is second  # a restart does not rebuild it either
    assert ClassifyLogic(False, None).snapshot() is None  # no recovery: no snapshot


def test_each_partition_learns_alone_and_interleaving_changes_no_verdict():
    """Partition 0 trains its model, partition 1 has only wordings the model must read.
    Whatever the interleaving, chunking and mixing of their batches, each message gets
    the verdict it gets when its partition is read alone; one classifier shared by both
    (the old parse step) answers partition 1 differently depending on the order."""
    probes = [bounce(UNTRAINED, i, reply) for i, reply in enumerate(UNSEEN)]
    trained = TRAINING + [bounce(TRAINED, len(TRAINING) + i, r) for i, r in enumerate(UNSEEN)]

    def run(step: ParseAndClassify, order: list[list]) -> dict[tuple[int, int], BounceVerdict]:
        step.parser.now = lambda: NOW
        got = {}
        for poll in order:
            for batch in step(poll):
                for ev, verdict in batch.events:
                    got[(ev.partition, ev.offset)] = verdict
        return got

    def interleavings(seed: int) -> list[list]:
        """Random polls of each partition, in random order, some mixing both (as one
        worker's `parse` call does), the partitions' own order kept."""
        rnd = random.Random(seed)
        left = {0: list(trained), 1: list(probes)}
        polls: list[list] = []
        while left:
            poll: list = []
            for part in rnd.sample(sorted(left), rnd.randint(1, len(left))):
                n = rnd.randint(1, 30)
                poll += left[part][:n]
                left[part] = left[part][n:]
                if not left[part]:
                    del left[part]
            polls.append(poll)
        return polls

    alone = {**run(ParseAndClassify(HASHER), [trained]),
             **run(ParseAndClassify(HASHER), [probes])}
    assert [alone[(0, len(TRAINING) + i)].bounce_class for i in range(len(UNSEEN))] == \
        [expected for *_r, expected in UNSEEN]
    assert all(alone[(1, i)].source != "model" for i in range(len(UNSEEN)))
    orders = [[trained, probes], [probes, trained]] + [interleavings(s) for s in range(8)]
    for order in orders:
        assert run(ParseAndClassify(HASHER), order) == alone

    shared = [run(ParseAndClassify(HASHER, one_classifier()), order) for order in orders[:2]]
    assert shared[0] != shared[1]  # what per-partition classifiers prevent


def test_the_wired_flow_writes_the_same_verdicts_whatever_the_partitions_order():
    """The whole dataflow in memory: the partitions' messages in two orders (as two
    workers might read them), one mixed batch at a time; the events table is the same."""
    cfg = load_settings(environ={"MAILFLOW_KAFKA_BROKERS": "127.0.0.1:9",
                                 "MAILFLOW_SHARDS": "4", "MAILFLOW_BATCH_MS": "1"})
    probes = [bounce(UNTRAINED, i, reply) for i, reply in enumerate(UNSEEN)]
    trained = TRAINING + [bounce(TRAINED, len(TRAINING) + i, r) for i, r in enumerate(UNSEEN)]
    partitions = [f"{t}/{p}" for t, p in (TRAINED, UNTRAINED)]

    def events_table(items: list) -> list[tuple]:
        tables: list = []
        io = FlowIO(TestingSource(items + [CaughtUp(*TRAINED), CaughtUp(*UNTRAINED)],
                                  batch_size=16),
                    TestingSource([]), partitions, TestingSink(tables), TestingSink([]))
        run_main(build_flow(cfg, HASHER, io, snapshots=False))
        rows: dict[str, list] = defaultdict(list)
        for table, block in tables:
            rows[table].extend(block)
        return sorted(rows["mailflow.events"], key=repr)

    first, second = events_table(trained + probes), events_table(probes + trained)
    assert len(first) == len(trained) + len(probes)
    assert first == second
    sources = {(row[-2], row[-1]): row[12] for row in first}  # (partition, offset): source
    assert sources[(0, len(TRAINING))] == "model"
    assert sources[(1, 0)] != "model"
