"""The sending side's view of the engine's decisions: what applies to a send, now.

Fed with the records of `mailflow.throttle` and `mailflow.suppressions` (in
any order, repeats included), it answers "may I send from this sender to this
provider, and how fast?" by resolving:

- the pair's own decision (`sender|domain`), the sender-wide one
  (`sender|*`) and the provider-wide one (`*|domain`): the most restrictive
  (lowest `rate_factor`) wins;
- expiry: a `pause` whose `until` has passed becomes the first step of the
  ramp (`slow` at `ramp_start`, reason `pause_expired`) until the engine's
  next decision for that key arrives.

A record with a `seq` not above the one held for its key is a repeat or
out of order, and is ignored (Kafka outputs are at-least-once).

>>> view = DecisionView()
>>> view.apply_decision({"sender": "s", "domain": "gmail.com", "action": "pause",
...                      "rate_factor": 0.0, "until": "2026-11-21T10:15:00.000Z",
...                      "reason": "complaint_rate", "seq": 1})
True
>>> view.effective("s", "gmail.com", now=parse_time("2026-11-21T10:00:00Z")).action
'pause'
>>> e = view.effective("s", "gmail.com", now=parse_time("2026-11-21T10:16:00Z"))
>>> e.action, e.rate_factor, e.reason
('slow', 0.25, 'pause_expired')
>>> view.effective("s", "yahoo.com", now=0).action
'allow'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

ALL = "*"
_ORDER = {"allow": 0, "slow": 1, "pause": 2}


def parse_time(text: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 time (None stays None)."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _is_decision(record: Any) -> bool:
    """A record the view can resolve: an object with a known action, a rate_factor
    between 0 and 1, a numeric seq, and an `until` that parses (when there is one).

    >>> _is_decision({"action": "slow", "rate_factor": "1e999"}), _is_decision({"seq": 1e308})
    (False, True)
    """
    if not isinstance(record, dict) or record.get("action", "allow") not in _ORDER:
        return False
    try:
        if not 0.0 <= float(record.get("rate_factor", 1.0)) <= 1.0:  # NaN fails too
            return False
        int(record.get("seq", 0))
        until = record.get("until")
        if until is not None:
            parse_time(str(until))
    except Exception:  # whatever a hostile record holds, it is only not a decision
        return False
    return True


class Effective(NamedTuple):
    action: str  # allow | slow | pause
    rate_factor: float
    until: str | None
    reason: str
    key: str  # which decision applies: "sender|domain", "sender|*", "*|domain", or ""
    seq: int
    decision: dict[str, Any] | None  # the record behind it


ALLOW = Effective("allow", 1.0, None, "no_decision", "", 0, None)


class DecisionView:
    def __init__(self, ramp_start: float = 0.25):
        self.ramp_start = ramp_start
        self.decisions: dict[str, dict[str, Any]] = {}
        self.suppressed: dict[str, dict[str, Any]] = {}
        self.version = 0  # changes counter: readers can tell something moved
        self.rejected = 0  # records that were not decisions or suppressions

    def apply_decision(self, record: dict[str, Any]) -> bool:
        """Take one `mailflow.throttle` record; False if it changes nothing or is not a
        decision (counted in `rejected`: a malformed record must not stop the reader).

        >>> view = DecisionView()
        >>> view.apply_decision([1]), view.apply_decision({"action": "pause", "seq": "x"})
        (False, False)
        >>> view.rejected
        2
        """
        if not _is_decision(record):
            self.rejected += 1
            return False
        key = f"{record.get('sender', '')}|{record.get('domain', '')}"
        held = self.decisions.get(key)
        if held is not None and int(record.get("seq", 0)) <= int(held.get("seq", 0)):
            return False
        self.decisions[key] = record
        self.version += 1
        return True

    def apply_suppression(self, record: dict[str, Any]) -> bool:
        recipient_hash = record.get("recipient_hash") if isinstance(record, dict) else None
        if not recipient_hash or not isinstance(recipient_hash, str):
            self.rejected += 1
            return False
        self.suppressed[recipient_hash] = record
        self.version += 1
        return True

    def _resolve(self, record: dict[str, Any] | None, key: str, now: float) -> Effective:
        if record is None:
            return ALLOW
        action = record.get("action", "allow")
        factor = float(record.get("rate_factor", 1.0))
        reason = record.get("reason", "")
        until = record.get("until")
        if action == "pause":
            end = parse_time(until)
            if end is not None and now >= end:
                action, factor, reason = "slow", self.ramp_start, "pause_expired"
        return Effective(action, factor, until if action == "pause" else None, reason, key,
                         int(record.get("seq", 0)), record)

    def effective(self, sender: str, domain: str, now: float) -> Effective:
        """The decision that applies to one send: the most restrictive of the three keys."""
        best = ALLOW
        for key in (f"{sender}|{domain}", f"{sender}|{ALL}", f"{ALL}|{domain}"):
            e = self._resolve(self.decisions.get(key), key, now)
            if (e.rate_factor, -_ORDER[e.action]) < (best.rate_factor, -_ORDER[best.action]):
                best = e
        return best

    def suppression(self, recipient_hash: str) -> dict[str, Any] | None:
        return self.suppressed.get(recipient_hash)
