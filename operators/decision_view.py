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

Suppressions are permanent, or temporary holds when they carry `until` (an
out-of-office reply: "not before the return date"). A hold blocks only
while `now` is before its `until`; a permanent suppression always blocks
and is never weakened by a hold arriving after it (see `apply_suppression`).

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

import heapq
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

ALL = "*"
_ORDER = {"allow": 0, "slow": 1, "pause": 2}


def parse_time(text: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 time (None stays None)."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_until(text: Any) -> float:
    """Epoch seconds of a suppression's `until`: an ISO date (`YYYY-MM-DD`, the day the
    person is back: the hold ends at its start, 00:00 UTC) or an RFC 3339 time (one
    without an offset is read as UTC). Raises ValueError on anything else.

    >>> parse_until("2026-12-19") == parse_until("2026-12-19T00:00:00Z")
    True
    >>> parse_until("2026-12-19T09:00:00+01:00") - parse_until("2026-12-19")
    28800.0
    >>> parse_until(20261219)
    Traceback (most recent call last):
    ...
    ValueError: until must be a date or an RFC 3339 time, not int
    """
    if not isinstance(text, str):
        raise ValueError(f"until must be a date or an RFC 3339 time, not {type(text).__name__}")
    if len(text) == 10:  # a plain date (fromisoformat would give a local-time midnight)
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


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
        # recipient hash -> end of its hold (epoch s), for the suppressions that are holds
        self.hold_until: dict[str, float] = {}
        # the holds not yet counted out by `active_holds` (a time-ordered queue: counting
        # costs what expires, never a scan of every hold)
        self._uncounted: dict[str, float] = {}
        self._hold_ends: list[tuple[float, str]] = []
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
        """Take one `mailflow.suppressions` record; False if it changes nothing or is not a
        suppression (no recipient hash, or an `until` that is no time: counted in
        `rejected`).

        The last record per recipient wins (the topic is compacted by recipient hash),
        with one exception: a hold (`until`) after a permanent suppression is ignored,
        since a permanent suppression (an unsubscribe, a complaint) must never turn into
        "only until Monday". The job publishes the strongest record last, so compaction
        keeps that one; this rule guards the same run against any order.

        >>> view = DecisionView()
        >>> view.apply_suppression({"recipient_hash": "h", "reason": "reply_unsubscribe"})
        True
        >>> view.apply_suppression({"recipient_hash": "h", "reason": "out_of_office",
        ...                         "until": "2026-12-19"})
        False
        >>> view.suppression("h", now=parse_until("2027-01-01"))["reason"]
        'reply_unsubscribe'
        >>> view.apply_suppression({"recipient_hash": "h", "until": "soon"}), view.rejected
        (False, 1)
        """
        recipient_hash = record.get("recipient_hash") if isinstance(record, dict) else None
        if not recipient_hash or not isinstance(recipient_hash, str):
            self.rejected += 1
            return False
        until = record.get("until")
        end = None
        if until is not None:
            try:
                end = parse_until(until)
            except (ValueError, OverflowError, OSError):
                self.rejected += 1
                return False
            if recipient_hash in self.suppressed and recipient_hash not in self.hold_until:
                return False  # never weaken a permanent suppression
        self._forget_hold(recipient_hash)
        self.suppressed[recipient_hash] = record
        if end is not None:
            self.hold_until[recipient_hash] = end
            self._uncounted[recipient_hash] = end
            heapq.heappush(self._hold_ends, (end, recipient_hash))
        self.version += 1
        return True

    def remove_suppression(self, recipient_hash: str) -> bool:
        """A tombstone on `mailflow.suppressions`: the key is gone (False if not held).

        >>> view = DecisionView()
        >>> view.apply_suppression({"recipient_hash": "h", "reason": "hard_bounce"})
        True
        >>> view.remove_suppression("h"), view.suppression("h", now=0)
        (True, None)
        """
        if self.suppressed.pop(recipient_hash, None) is None:
            return False
        self._forget_hold(recipient_hash)
        self.version += 1
        return True

    def _forget_hold(self, recipient_hash: str) -> None:
        # its entry in the time-ordered queue goes when its time comes (it no longer
        # matches `_uncounted`)
        self.hold_until.pop(recipient_hash, None)
        self._uncounted.pop(recipient_hash, None)

    def suppression_state(self, recipient_hash: str, now: float
                          ) -> tuple[dict[str, Any] | None, bool]:
        """(the record held, whether it blocks at `now`): a permanent suppression always
        blocks, a hold only before its `until`.

        >>> view = DecisionView()
        >>> view.apply_suppression({"recipient_hash": "h", "reason": "out_of_office",
        ...                         "until": "2026-12-19"})
        True
        >>> view.suppression_state("h", parse_until("2026-12-18T23:59:59Z"))[1]
        True
        >>> view.suppression_state("h", parse_until("2026-12-19"))[1]
        False
        """
        record = self.suppressed.get(recipient_hash)
        if record is None:
            return None, False
        end = self.hold_until.get(recipient_hash)
        return record, end is None or now < end

    def active_holds(self, now: float) -> int:
        """How many holds still block at `now` (for metrics; `now` should not go back)."""
        while self._hold_ends and self._hold_ends[0][0] <= now:
            end, recipient_hash = heapq.heappop(self._hold_ends)
            if self._uncounted.get(recipient_hash) == end:
                del self._uncounted[recipient_hash]
        return len(self._uncounted)

    @property
    def permanent_suppressions(self) -> int:
        return len(self.suppressed) - len(self.hold_until)

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

    def held(self, now: float) -> list[Effective]:
        """Every decision held, each as it applies now on its own key (a pause past its
        `until` reads as the ramp's slow): what an operator's list of throttles shows.

        >>> view = DecisionView()
        >>> view.apply_decision({"sender": "s", "domain": "d", "action": "pause",
        ...                      "rate_factor": 0, "until": "2026-12-01T10:00:00Z", "seq": 1})
        True
        >>> [(e.key, e.action, e.rate_factor) for e in view.held(parse_until("2026-12-02"))]
        [('s|d', 'slow', 0.25)]
        """
        return [self._resolve(record, key, now) for key, record in self.decisions.items()]

    def suppression(self, recipient_hash: str, now: float) -> dict[str, Any] | None:
        """The suppression that blocks sending to the recipient at `now`, or None (none,
        or a hold that has ended)."""
        record, active = self.suppression_state(recipient_hash, now)
        return record if active else None
