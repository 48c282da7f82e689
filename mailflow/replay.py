"""`mailflow replay FILE`: feed a JSONL or provider-export file through the ingest path.

The format is detected from the file (or named with `--provider`):

| file | provider |
| --- | --- |
| JSON lines of canonical events (`type`, `ts`, …) | canonical |
| a JSON array of SendGrid events (`sg_event_id`, `event`, `email`) | sendgrid |
| a JSON array of `{"msys": …}` | sparkpost |
| JSON lines of `{"event-data": …}` | mailgun |
| JSON lines of `{"RecordType": …}` | postmark |
| JSON lines of SNS envelopes or SES events (`eventType` / `notificationType`) | ses |
| one raw RFC 5322 message (`*.eml`) | mime (a `reply` event) |
| an mbox file (`*.mbox`, or starts with `From `) | mime (a `reply` event per message) |

Arrays are sent in chunks, lines as one webhook body each (500 at a time), through the same
mapping, validation and produce path as `mailflow ingest`; nothing is lost
(rejects go to the dead-letter topic).
"""

from __future__ import annotations

import mailbox
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from flows.settings import Settings
from mailflow.ingest import INBOUND, PROVIDERS, IngestCore
from mailflow.job import hasher_for

CHUNK = 500


def detect(first: object) -> str:
    """The provider of a decoded item (the first of an array, or the first line)."""
    if isinstance(first, dict):
        if "msys" in first:
            return "sparkpost"
        if "event-data" in first:
            return "mailgun"
        if "RecordType" in first:
            return "postmark"
        if "TopicArn" in first or "eventType" in first or "notificationType" in first:
            return "ses"
        if "sg_event_id" in first or ("event" in first and "email" in first):
            return "sendgrid"
        if "type" in first and "ts" in first:
            return "canonical"
    raise ValueError("cannot tell the format; name it with --provider")


def bodies(path: Path, provider: str | None) -> Iterator[tuple[str, list[bytes], int]]:
    """(provider, webhook bodies to send together, bytes consumed so far)."""
    data = path.read_bytes()
    if provider in (None, "mime") and (path.suffix.lower() == ".mbox"
                                       or data.startswith(b"From ")):
        yield from _mbox(path, len(data))
        return
    if provider == "mime" or (provider is None and path.suffix.lower() == ".eml"):
        yield "mime", [data], len(data)
        return
    stripped = data.lstrip()
    if stripped.startswith(b"["):
        items = orjson.loads(stripped)
        name = provider or (detect(items[0]) if items else "canonical")
        total = len(data)
        for start in range(0, len(items), CHUNK):
            chunk = items[start:start + CHUNK]
            yield name, [orjson.dumps(chunk)], total * (start + len(chunk)) // max(len(items), 1)
        return
    consumed = 0
    name = provider
    batch: list[bytes] = []
    for line in data.splitlines(keepends=True):
        consumed += len(line)
        if not line.strip():
            continue
        if name is None:
            name = detect(orjson.loads(line))
        batch.append(line)
        if len(batch) >= CHUNK:
            yield name, batch, consumed
            batch = []
    if batch and name is not None:
        yield name, batch, consumed


def _mbox(path: Path, total: int) -> Iterator[tuple[str, list[bytes], int]]:
    """The messages of an mbox file as raw bodies for the `mime` adapter."""
    box = mailbox.mbox(path, create=False)
    try:
        keys = list(box.iterkeys())
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start:start + CHUNK]
            yield "mime", [box.get_bytes(key) for key in chunk], \
                total * (start + len(chunk)) // max(len(keys), 1)
    finally:
        box.close()


def run_replay(settings: Settings, file: str, provider: str | None, rate: float | None,
               sender: str | None, dev: bool = False) -> int:
    path = Path(file)
    if not path.is_file():
        print(f"mailflow replay: no such file: {file}", file=sys.stderr)
        return 2
    if provider is not None and provider not in PROVIDERS + INBOUND:
        print(f"mailflow replay: unknown provider {provider!r} "
              f"(one of {', '.join(PROVIDERS + INBOUND)})", file=sys.stderr)
        return 2
    core = IngestCore(settings.brokers(), settings.provider_config(), hasher_for(settings, dev))
    params = {"sender": sender} if sender else {}
    total = path.stat().st_size
    accepted = rejected = 0
    started = last = time.monotonic()
    try:
        for name, batch, consumed in bodies(path, provider):
            result = core.ingest_many(name, batch, params)
            accepted += result.accepted
            rejected += result.rejected
            if rate:
                ahead = accepted / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            now = time.monotonic()
            if now - last >= 0.5 and sys.stderr.isatty():
                last = now
                share = consumed / total if total else 1.0
                bar = "#" * int(30 * share)
                print(f"\r[{bar:<30}] {100 * share:5.1f}%  {accepted:,} events  "
                      f"{rejected:,} rejected  {accepted / (now - started):,.0f}/s",
                      end="", file=sys.stderr, flush=True)
    except ValueError as exc:
        print(f"\nmailflow replay: {exc}", file=sys.stderr)
        return 2
    finally:
        core.close()
    elapsed = time.monotonic() - started
    print(f"\rreplayed {path.name}: {accepted:,} events accepted, {rejected:,} rejected "
          f"(to mailflow.dlq) in {elapsed:.1f}s" + " " * 20, file=sys.stderr)
    return 0
