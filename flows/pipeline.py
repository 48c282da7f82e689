"""The main dataflow, as a list of named steps.

    kafka_in ─ parse ─ classify ─┐  (keyed by input partition: its bounce classifier)
    ┌────────────────────────────┘
    └ classified ─────┬─ route_to_shards ─ shards ─┬─ throttle_signals ─ throttle ─ decisions
                      │   (progress to every shard) ├─ shard_tables ──────────────┐
                      │                             ├─ shard_facts ─ merges ──────┤ (metrics_1m,
                      │                             │      │  └ scored ─ personas ┤  convergence,
                      │                             │      └ merge_kafka ─┐      │  models,
                      │                             └─ shard_kafka ──────┤      │  variants)
                      ├─ suppression_rows ──────────────────────────────┼──────┤
                      ├─ suppressions, dead_letters ─────────────────────┤      ▼
    control_in ─ parse_control ─ erasures (to their shard)               ▼   batch_rows
                                                         kafka_records ─ kafka_out   │
                                                                           clickhouse_out

Keys: the input partition ("topic/partition") for the bounce classifiers, a
recipient shard ("0000".."<shards-1>") for everything scoped to a recipient
(and its personas), "s:<sender>" / "p:<provider>" for throttle books, "agg:<i>"
for the merges of sums over recipients, "models" for the online models (they
learn from every shard's facts), the table name for row batches. How the work
is shared, and why the results do not depend on it, is in `flows/shards.py`.
Sources and sinks come in as arguments (`FlowIO`): the job passes Kafka and
ClickHouse, tests Bytewax's testing source and sink.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from flows.outputs import BatchRowsLogic, dead_letter_messages, suppression_messages
from flows.parse import BatchParser, ClassifyLogic, merge_classified, parse_controls
from flows.settings import Settings
from flows.shards import MergeLogic, PersonaLogic, ShardLogic, route_to_shards
from flows.stats import STATS
from flows.throttle import ThrottleLogic, decision_outputs
from schemas import rows as out
from schemas.hashing import RecipientHasher

DECISIONS, SUPPRESSED = "mailflow.throttle_decisions", "mailflow.suppressions"


class FlowIO(NamedTuple):
    """Where the job reads and writes."""

    events: Source  # batches of RawMessage / CaughtUp from the input topics
    control: Source  # the same from mailflow.control
    partitions: list[str]  # every input partition ("topic/partition"): what the gates wait for
    tables: Sink  # (table, rows or Erasure) -> ClickHouse
    kafka: Sink  # ("kafka", [KafkaSinkMessage]) -> the output topics


def kafka_io(settings: Settings, tail: bool = True) -> FlowIO:
    """The job's real inputs and outputs: Kafka topics and ClickHouse."""
    from flows.sources import KafkaPartitionSource
    from schemas.topics import CONTROL
    from sinks.clickhouse import ClickHouseSink
    from sinks.kafka import KafkaOutput

    brokers = settings.brokers().split(",")
    events = KafkaPartitionSource(brokers, settings.input_topics, tail=tail,
                                  batch_size=settings.kafka_batch,
                                  add_config={"fetch.wait.max.ms": str(settings.fetch_wait_ms)})
    control = KafkaPartitionSource(brokers, [CONTROL], tail=tail, batch_size=settings.kafka_batch)
    return FlowIO(events, control, events.partition_ids(),
                  ClickHouseSink(settings.clickhouse_dsn, stats=STATS),
                  KafkaOutput(brokers, stats=STATS))


def build_flow(settings: Settings, hasher: RecipientHasher, io: FlowIO,
               snapshots: bool = True) -> Dataflow:
    """Wire the job. `snapshots=False` (no recovery) skips building state snapshots."""
    flow = Dataflow("mailflow")
    # Bounce classifiers learn per input partition, in offset order (see flows/parse.py).
    parsed = op.flat_map_batch("classified", op.stateful_batch(
        "classify", op.flat_map_batch("parse", op.input("kafka_in", flow, io.events),
                                      BatchParser(hasher)),
        lambda resume: ClassifyLogic(snapshots, resume)), merge_classified)
    # Commands (erasures) have their own input: never parsed as events.
    commands = op.flat_map_batch("parse_control", op.input("control_in", flow, io.control),
                                 parse_controls)
    erasures = op.flat_map("erasures", commands, lambda c: c.erasures)

    # Recipient shards: event-time gates, recipient state, facts for the merges.
    shard_inputs = op.flat_map("route_to_shards", op.merge("shard_input", parsed, erasures),
                               partial(route_to_shards, settings.shards))
    shards = op.key_rm("shard_outputs", op.stateful_batch(
        "shards", shard_inputs,
        lambda resume: ShardLogic(settings, io.partitions, snapshots, resume)))
    merges = op.key_rm("merge_outputs", op.stateful_batch(
        "merges", op.flat_map("shard_facts", shards, lambda o: o.merges),
        lambda resume: MergeLogic(settings, settings.shards, snapshots, resume)))
    # Personas fold the models' scores per recipient, back in the recipient's shard.
    personas = op.key_rm("persona_outputs", op.stateful_batch(
        "personas", op.flat_map("scored", merges, lambda o: o.personas),
        lambda resume: PersonaLogic(snapshots, resume)))

    # Throttling: one book per sender and per provider.
    policy = settings.throttle_policy()
    decisions = op.flat_map_batch("decision_outputs", op.key_rm("decisions", op.stateful_batch(
        "throttle", op.flat_map("throttle_signals", shards, lambda o: o.signals),
        lambda resume: ThrottleLogic(policy, resume))), decision_outputs)

    # ClickHouse: every table through one size/age batcher per table.
    tables = op.merge(
        "table_rows",
        op.flat_map("shard_tables", shards, lambda o: o.tables),
        op.flat_map("merge_tables", merges, lambda o: o.tables),
        personas,  # (recipient_profiles, rows)
        op.map("decision_rows", decisions, lambda d: (DECISIONS, d.rows)),
        op.map("suppression_rows", parsed, lambda b: (SUPPRESSED, [
            out.suppression_row(ev, reason) for ev, reason in b.suppressions])),
    )
    batches = op.stateful_batch(
        "batch_rows", op.filter("has_rows", tables, lambda kv: bool(kv[1])),
        lambda resume: BatchRowsLogic(settings.batch_rows, settings.batch_ms / 1000.0, resume))
    op.output("clickhouse_out", batches, io.tables)

    # Kafka: decisions, scores, send times, variants, suppressions, dead letters; lists of
    # messages that name their topic travel as one item each.
    records = op.merge(
        "kafka_records",
        op.map("decision_kafka", decisions, lambda d: d.kafka),
        op.filter_map("shard_kafka", shards, lambda o: o.kafka or None),
        op.filter_map("merge_kafka", merges, lambda o: o.kafka or None),
        op.filter_map("suppressions", parsed, suppression_messages),
        op.filter_map("dead_letters", parsed, dead_letter_messages),
        op.filter_map("control_dead_letters", commands, dead_letter_messages),
    )
    op.output("kafka_out", op.map("kafka_key", records, lambda msgs: ("kafka", msgs)), io.kafka)
    return flow


