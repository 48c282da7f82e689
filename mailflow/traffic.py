"""`mailflow generate`: synthetic traffic into Kafka or a JSONL file, with progress."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime

from confluent_kafka import KafkaException, Producer

from flows.settings import Settings
from mailflow.generator import GeneratedEvent, Incident, TrafficGenerator, write_jsonl
from sinks.kafka import producer_config


class ProduceError(RuntimeError):
    """Messages could not be delivered to Kafka."""


class EventProducer:
    """Produces generated events; counts deliveries and failures (nothing silently lost)."""

    def __init__(self, brokers: str):
        self.producer = Producer(producer_config(**{"bootstrap.servers": brokers}))
        self.produced = 0
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            self.last_error = str(err)

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: let librdkafka drain it
                self.producer.poll(0.05)
            except KafkaException as exc:
                raise ProduceError(f"cannot produce to {topic}: {exc}") from exc
        self.produced += 1
        if self.produced % 1000 == 0:
            self.producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self.producer.flush(timeout)
        if remaining:
            raise ProduceError(f"{remaining} messages still undelivered after {timeout:.0f}s")
        if self.failed:
            raise ProduceError(f"{self.failed} messages failed: {self.last_error}")


def paced(events: Iterable[GeneratedEvent], start_ts: float, time_scale: float,
          stop: threading.Event | None = None) -> Iterator[GeneratedEvent]:
    """Release events when the wall clock reaches their (scaled) event time."""
    wall0 = time.monotonic()
    for ev in events:
        if stop is not None and stop.is_set():
            return
        delay = (ev.ts - start_ts) / time_scale - (time.monotonic() - wall0)
        if delay > 0.002:
            time.sleep(delay)
        yield ev


def plan(rate: float, seconds: float, time_scale: float, seed: int, incident: str | None,
         live: bool = True, start: float | None = None
         ) -> tuple[TrafficGenerator, float, float, float]:
    """The generator and its event-time window: `seconds` of wall time, `time_scale` times
    as much event time. Live, the window ends when the wall clock does (at scale 1 event
    time is the wall clock); otherwise it ends now, so nothing lies in the future.
    A given `start` (epoch seconds) makes the traffic reproducible."""
    if rate <= 0 or seconds <= 0 or time_scale <= 0:
        raise ValueError("rate, seconds and time scale must be positive")
    span = seconds * time_scale
    if start is None:
        start = time.time() + (seconds if live else 0.0) - span
    gen = TrafficGenerator(seed=seed, start=start,
                           incident=Incident.parse(incident) if incident else None)
    return gen, start, rate / time_scale, span


def send_all(events: Iterable[GeneratedEvent], brokers: str) -> int:
    """Every event to its topic, unpaced; how many, once all are delivered."""
    producer = EventProducer(brokers)
    for ev in events:
        producer.send(ev.topic, ev.key, ev.value)
    producer.flush()
    return producer.produced


def send_or_write(events: Iterable[GeneratedEvent], to: str, settings: Settings) -> None:
    """A simulation's events to Kafka (`to` = "kafka", unpaced) or a JSONL file `to`, and
    how many went where (a file on stdout, Kafka on stderr)."""
    if to != "kafka":
        print(f"wrote {write_jsonl(events, to)} events to {to}")
    else:
        produced = send_all(events, settings.brokers())
        print(f"produced {produced:,} events, all delivered", file=sys.stderr)


def parse_start(text: str) -> float:
    """`--start`: epoch seconds or RFC 3339."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(f"--start must be epoch seconds or RFC 3339, got {text!r}") from None


def generate(settings: Settings, rate: float, seconds: float, to: str, seed: int,
             incident: str | None, live: bool, time_scale: float,
             start: str | None = None) -> int:
    try:
        start_ts = parse_start(start) if start else None
        gen, start_ts, event_rate, span = plan(rate, seconds, time_scale, seed, incident,
                                              live and to == "kafka", start_ts)
    except ValueError as exc:
        print(f"mailflow generate: {exc}", file=sys.stderr)
        return 2
    events = gen.events(event_rate, span)
    if to != "kafka":
        count = write_jsonl(events, to)
        print(f"wrote {count} events to {to}")
        return 0
    producer = EventProducer(settings.brokers())
    stream = paced(events, start_ts, time_scale) if live else events
    last = time.monotonic()
    for ev in stream:
        producer.send(ev.topic, ev.key, ev.value)
        now = time.monotonic()
        if now - last >= 1.0:
            last = now
            print(f"\rproduced {producer.produced:,} (delivered {producer.delivered:,})",
                  end="", file=sys.stderr, flush=True)
    producer.flush()
    print(f"\rproduced {producer.produced:,} events, all delivered        ", file=sys.stderr)
    return 0
