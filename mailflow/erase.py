"""`mailflow erase`: ask the running (or next) job to forget one recipient (GDPR Art. 17).

The command is one message on `mailflow.control`, keyed by the recipient hash;
the job does the forgetting (`flows/pipeline.py`, `operators/*.forget`) and the
deletes (`sinks/clickhouse.py`). The job need not be running: it reads the
command when it next starts.
"""

from __future__ import annotations

from flows.settings import ConfigError, Settings

HELP = """\
Publish an erasure command on mailflow.control; the job (running now, or when it
next starts) then forgets the recipient everywhere it can:

erased:
  - ClickHouse rows carrying the recipient hash: events, attribution, send_times,
    recipient_profiles (a synchronous ALTER TABLE ... DELETE: the parts are rewritten),
    and the hours of flow_recipients_1h they were counted in are recomputed;
  - the job's state: message tracker, attribution touches, convergence membership,
    engagement history and pending labels, send-time history, persona; events of the
    recipient still queued or still in flight (stamped at or before the erasure's ts);
  - compacted topics: a tombstone for the hash on mailflow.send_times.

kept:
  - the suppression entry (mailflow.suppressions topic and table: the hash, a reason,
    a time), so an opt-out or a hard bounce stays honoured;
  - anonymous aggregates (metrics_1m, convergence, model weights, throttle decisions);
  - mailflow.scores rows and records (keyed by message id, no recipient hash);
  - what mailflow does not own: the input topics (raw events: set their retention),
    mailflow.dlq (refused raw input), and this command on mailflow.control.

The address is hashed with the job's key (MAILFLOW_HASH_KEY, or --dev), so the
raw address never leaves this process.
"""


def erase(settings: Settings, address: str | None, recipient_hash: str | None,
          dev: bool = False) -> int:
    """Publish the command and print it; 0 once the broker acknowledged it."""
    import orjson
    from confluent_kafka import Producer

    from mailflow.broker import ensure_topics
    from schemas.control import erase_record
    from schemas.topics import CONTROL
    from sinks.kafka import producer_config

    if bool(address) == bool(recipient_hash):
        raise ConfigError("give exactly one of --recipient ADDRESS or --hash H")
    if address:
        from mailflow.job import hasher_for

        recipient_hash = hasher_for(settings, dev).recipient(address)
    assert recipient_hash is not None
    record = erase_record(recipient_hash.strip())
    brokers = settings.brokers()
    ensure_topics(brokers, partitions=settings.partitions)
    failures: list[str] = []
    producer = Producer(producer_config(**{"bootstrap.servers": brokers}))
    producer.produce(CONTROL, orjson.dumps(record), record["recipient_hash"].encode(),
                     on_delivery=lambda err, _msg: err and failures.append(str(err)))
    remaining = producer.flush(30)
    if remaining or failures:
        print(f"mailflow erase: not acknowledged by Kafka: {failures or 'timeout'}")
        return 1
    print(f"published on {CONTROL}: {orjson.dumps(record).decode()}")
    return 0
