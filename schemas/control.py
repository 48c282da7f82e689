"""Commands to the job on `mailflow.control` (wire format v1).

One JSON object per message. The only command so far is an erasure (GDPR
Art. 17), published by `mailflow erase`:

    {"command": "erase", "recipient_hash": "3f2a…", "ts": "2026-12-01T22:40:00.000Z",
     "requested_at": "2026-12-01T22:40:00.000Z"}

- `recipient_hash`: the keyed hash of the person's address (the job's key);
- `ts`: event time the erasure covers: the job forgets everything it holds about
  the recipient, and drops their events stamped at or before `ts` that are still
  in flight (default: when it was requested);
- `requested_at`: wall-clock time of the request, for the record.

A message that is not a valid command becomes a dead letter, like bad input.

>>> cmd = parse_control(b'{"command": "erase", "recipient_hash": "abc", "ts": 1795000000}',
...                     "mailflow.control", 0, 7)
>>> cmd.recipient_hash, cmd.up_to_ms, cmd.offset
('abc', 1795000000000, 7)
>>> parse_control(b'{"command": "reboot"}', "mailflow.control", 0, 8).error
'unknown command: reboot'
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import orjson

from schemas.events import DeadLetter, parse_ts
from schemas.rows import iso_ms

COMMANDS = ("erase",)
MAX_HASH_CHARS = 256


class EraseCommand(NamedTuple):
    """Forget one recipient everywhere (the suppression entry excepted)."""

    recipient_hash: str
    up_to_ms: int  # event time the erasure covers (the command's `ts`)
    requested_at: str
    topic: str = ""
    partition: int = 0
    offset: int = 0


def erase_record(recipient_hash: str, now_s: float | None = None,
                 up_to_s: float | None = None) -> dict[str, Any]:
    """The value `mailflow erase` publishes.

    >>> erase_record("abc", now_s=1795000000.5)
    {'command': 'erase', 'recipient_hash': 'abc', 'ts': '2026-11-18T11:06:40.500Z', \
'requested_at': '2026-11-18T11:06:40.500Z'}
    """
    now_s = time.time() if now_s is None else now_s
    up_to_s = now_s if up_to_s is None else up_to_s
    return {"command": "erase", "recipient_hash": recipient_hash,
            "ts": iso_ms(int(round(up_to_s * 1000))),
            "requested_at": iso_ms(int(round(now_s * 1000)))}


def parse_control(raw: bytes | None, topic: str, partition: int, offset: int
                  ) -> EraseCommand | DeadLetter:
    """One control message: a command, or a dead letter saying what is wrong with it."""

    def refuse(reason: str) -> DeadLetter:
        return DeadLetter(reason, topic, partition, offset, raw or b"")

    try:
        obj = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        return refuse(f"control message is not JSON: {exc}")
    if not isinstance(obj, dict):
        return refuse("control message must be a JSON object")
    command = obj.get("command")
    if command not in COMMANDS:
        return refuse(f"unknown command: {str(command)[:40]}")
    recipient_hash = obj.get("recipient_hash")
    if not isinstance(recipient_hash, str) or not recipient_hash.strip():
        return refuse("erase needs recipient_hash (a string)")
    if len(recipient_hash) > MAX_HASH_CHARS:
        return refuse(f"recipient_hash longer than {MAX_HASH_CHARS} characters")
    try:
        up_to_ms = int(round(parse_ts(obj.get("ts", time.time())) * 1000))
    except Exception as exc:  # parse_ts refuses with its own exception type and reason
        return refuse(f"erase: {exc}")
    requested_at = obj.get("requested_at", "")
    return EraseCommand(recipient_hash.strip(), up_to_ms,
                        requested_at if isinstance(requested_at, str) else "",
                        topic, partition, offset)


class Erasure(NamedTuple):
    """Travels with a table's rows to its sink: drop this recipient's rows, there and
    in whatever is still buffered (`column`: where a row carries the hash)."""

    recipient_hash: str
    column: int


#: Kept on erasure: the opt-out must stay honoured, and the entry is a hash only.
KEPT_TABLES = frozenset({"mailflow.suppressions"})


def erasable_tables(table_columns: dict[str, tuple[str, ...]]) -> dict[str, int]:
    """Every table whose rows carry `recipient_hash` (its column index), suppressions aside.

    >>> erasable_tables({"a": ("x", "recipient_hash"), "b": ("x",),
    ...                  "mailflow.suppressions": ("recipient_hash",)})
    {'a': 1}
    """
    return {table: columns.index("recipient_hash") for table, columns in table_columns.items()
            if "recipient_hash" in columns and table not in KEPT_TABLES}
