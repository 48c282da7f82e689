"""Multi-touch attribution: which email messages earn credit for a conversion.

An `AttributionBook` remembers, per sender and recipient, the messages
delivered to that recipient (each one a `Touch`). When the recipient converts,
`credits(sender, recipient_hash, ts_ms)` shares the conversion among the
touches before it, under four models at once, so an analyst can compare them
side by side.

What counts as a touch of a conversion at time C (all times are event times):

- A delivered message from the *same sender* as the conversion: a shop's
  conversion is never credited to another sender's mail to the same person.
- Delivered inside the attribution window: C - window <= delivery <= C
  (both ends included; default window 7 days). A message delivered after the
  conversion never earns credit, even when it reached the stream first.
- The same delivery seen twice (same `message_id`, same delivery ms, as an
  at-least-once input or a retried webhook repeats it) counts once.
- At most `max_touches` (default 50) of the latest deliveries per recipient
  are remembered; the oldest are forgotten first.

The four models (per model the credits sum to 1.0):

- ``first_touch``: all credit to the earliest touch in the window.
- ``last_touch``: all credit to the latest touch at or before the conversion.
- ``linear``: an equal share to every touch in the window.
- ``time_decay``: each touch weighs 2^(-(C - delivery) / half_life) (default
  half-life one day: a message delivered a day earlier counts half as much),
  and the weights are normalised to sum to 1.

``first_touch`` and ``last_touch`` give one credit of 1.0; ``linear`` and
``time_decay`` give one credit per touch, oldest first. Credits are rounded to
6 decimals; the latest touch absorbs the rounding so that each model still
sums to 1.0 (within 1e-9). Touches delivered in the same millisecond are
ordered by arrival: the one that reached the book first is the earlier touch.
The same sequence of calls always gives the same credits. `flows_touched`
names the mailflows (non-empty `flow_id`s) with a touch in the same window.

Three touches at days 0, 2 and 6, a conversion at day 6.5, half-life 1 day:
ages 6.5, 4.5 and 0.5 days give time-decay weights 2^-6.5 : 2^-4.5 : 2^-0.5
= 1 : 4 : 64, so shares 1/69, 4/69 and 64/69.

>>> DAY = 86_400_000
>>> book = AttributionBook()
>>> book.touch("shop.example", "r1", Touch(0, "<m1>", "spring-sale", "welcome"))
>>> book.touch("shop.example", "r1", Touch(2 * DAY, "<m2>", "spring-sale", ""))
>>> book.touch("shop.example", "r1", Touch(6 * DAY, "<m3>", "newsletter-12", "winback"))
>>> for c in book.credits("shop.example", "r1", 6 * DAY + DAY // 2):
...     print(f"{c.model:<12}{c.touch.message_id}  {c.credit}")
first_touch <m1>  1.0
last_touch  <m3>  1.0
linear      <m1>  0.333333
linear      <m2>  0.333333
linear      <m3>  0.333334
time_decay  <m1>  0.014493
time_decay  <m2>  0.057971
time_decay  <m3>  0.927536
>>> book.flows_touched("shop.example", "r1", 6 * DAY + DAY // 2)
['welcome', 'winback']
>>> book.credits("other.example", "r1", 6 * DAY)
[]

Memory: a remembered touch is one 3-tuple (delivery ms, message id, shared
(campaign, flow) pair) in its recipient's list. Campaign and flow strings are
interned in one table, so every touch of a campaign shares one pair. Measured
with `approx_bytes()` (CPython 3.11, 1,000,000 touches, 40-character message
ids, 32-character recipient hashes, 100 campaigns): about 195 bytes per touch
with 50 touches per recipient and 235 with 5 (the recipient's key and list
spread over its touches). Of a touch's bytes the message id string is 89, the
tuple 64, the timestamp 32 and the list slot 8.

State only shrinks through `expire(watermark_ms)`: touches older than
watermark - window can credit no conversion at or after the watermark, so they
are dropped, and a touch that arrives older than that afterwards is counted in
`late` instead of stored. A conversion older than the watermark may therefore
see fewer touches than it would have; the flow should treat it as late.

Expiry costs what expires, not what is held: each stored touch also files its
(sender, recipient) under its delivery minute (two list slots, 16 bytes), and
`expire` visits only the minutes before the horizon (a heap of minutes), cutting
each named history exactly at the horizon. Entries of recipients already cut,
capped or erased (`forget`) are skipped when their minute comes up.
"""

from __future__ import annotations

import heapq
import sys
from bisect import bisect_left, bisect_right
from operator import itemgetter
from typing import Any, NamedTuple

MODELS = ("first_touch", "last_touch", "linear", "time_decay")
FIRST_TOUCH, LAST_TOUCH, LINEAR, TIME_DECAY = MODELS

#: The largest `max_touches`: beyond it the rounding that the latest touch absorbs
#: (up to 5e-7 per other touch) could exceed a linear share.
MAX_TOUCHES_LIMIT = 1000

_MILLION = 1_000_000  # credits are whole millionths: 6 decimals
_delivered_ms = itemgetter(0)
_new = tuple.__new__  # builds the NamedTuples without their Python-level __new__ (hot path)
_TUPLE3_BYTES = sys.getsizeof((0, "", ()))
_MINUTE_MS = 60_000


class Touch(NamedTuple):
    """One delivered message, as attribution sees it."""

    ts_ms: int  # delivery time (epoch ms)
    message_id: str
    campaign_id: str
    flow_id: str  # "" when the message belongs to no mailflow


class Credit(NamedTuple):
    """The share of one conversion credited to one touch under one model."""

    model: str
    touch: Touch
    credit: float


# Stored per touch: (ts_ms, message_id, label), label an interned (campaign_id, flow_id).
_Stored = tuple[int, str, tuple[str, str]]


class AttributionBook:
    """Per (sender, recipient_hash) delivery history inside the attribution window."""

    __slots__ = ("window_s", "half_life_s", "max_touches", "capped", "duplicates", "late",
                 "_window_ms", "_half_life_ms", "_senders", "_labels", "_labels_kept",
                 "_horizon_ms", "_queue", "_queue_minutes")

    def __init__(self, window_s: int = 7 * 86400, half_life_s: int = 86400,
                 max_touches: int = 50):
        if window_s <= 0 or half_life_s <= 0:
            raise ValueError("window_s and half_life_s must be positive")
        if not 1 <= max_touches <= MAX_TOUCHES_LIMIT:
            raise ValueError(f"max_touches must be between 1 and {MAX_TOUCHES_LIMIT}")
        self.window_s = window_s
        self.half_life_s = half_life_s
        self.max_touches = max_touches
        self.capped = 0  # touches forgotten because a recipient had max_touches newer ones
        self.duplicates = 0  # the same delivery seen again, ignored
        self.late = 0  # touches older than the last expiry horizon, not stored
        self._window_ms = int(window_s * 1000)
        self._half_life_ms = half_life_s * 1000
        self._senders: dict[str, dict[str, list[_Stored]]] = {}
        self._labels: dict[tuple[str, str], tuple[str, str]] = {}
        self._labels_kept = 0  # table size after the last pruning
        self._horizon_ms: int | None = None
        # Expiry queue: delivery minute -> [sender, recipient, sender, recipient, ...] of the
        # touches stored in it, and a heap of those minutes.
        self._queue: dict[int, list[str]] = {}
        self._queue_minutes: list[int] = []

    def touch(self, sender: str, recipient_hash: str, touch: Touch) -> None:
        """Remember a delivered message."""
        ts_ms = touch.ts_ms
        if self._horizon_ms is not None and ts_ms < self._horizon_ms:
            self.late += 1
            return
        recipients = self._senders.get(sender)
        if recipients is None:
            recipients = self._senders[sender] = {}
        history = recipients.get(recipient_hash)
        if history is None:
            history = recipients[recipient_hash] = []
        pair = (touch.campaign_id or "", touch.flow_id or "")
        item = (ts_ms, touch.message_id, self._labels.setdefault(pair, pair))
        if not history or history[-1][0] < ts_ms:
            history.append(item)  # the common case: in order, so not seen before
        else:
            # A replayed delivery has the same ms, so only those need comparing (cheap; a
            # scan of the whole history would cost a cache miss per touch).
            lo = bisect_left(history, ts_ms, key=_delivered_ms)
            hi = bisect_right(history, ts_ms, lo=lo, key=_delivered_ms)
            for i in range(lo, hi):
                if history[i][1] == item[1]:
                    self.duplicates += 1
                    return
            history.insert(hi, item)  # after every touch of the same ms: arrival order
        minute = ts_ms // _MINUTE_MS
        queued = self._queue.get(minute)
        if queued is None:
            self._queue[minute] = [sender, recipient_hash]
            heapq.heappush(self._queue_minutes, minute)
        else:
            queued += (sender, recipient_hash)
        if len(history) > self.max_touches:
            del history[0]
            self.capped += 1

    def credits(self, sender: str, recipient_hash: str, ts_ms: int) -> list[Credit]:
        """Credits of a conversion at `ts_ms` under every model; [] when nothing touched it."""
        window = self._in_window(sender, recipient_hash, ts_ms)
        if not window:
            return []
        touches = [_new(Touch, (ts, message_id) + label) for ts, message_id, label in window]
        latest = window[-1][0]
        # Relative to the latest touch: same ratios as 2^(-age/half_life), and never all zero.
        decay = [2.0 ** ((item[0] - latest) / self._half_life_ms) for item in window]
        return [_new(Credit, (FIRST_TOUCH, touches[0], 1.0)),
                _new(Credit, (LAST_TOUCH, touches[-1], 1.0)),
                *_shares(LINEAR, touches, [1.0] * len(touches)),
                *_shares(TIME_DECAY, touches, decay)]

    def touch_of(self, sender: str, recipient_hash: str, message_id: str) -> Touch | None:
        """The delivery a reply answers: its message id as delivered (with or without the
        angle brackets of an In-Reply-To), from `sender` first, then from any sender.

        >>> book = AttributionBook()
        >>> book.touch("s", "r", Touch(1000, "m-1@mail.example", "c", "welcome"))
        >>> book.touch_of("other", "r", "<m-1@mail.example>")
        Touch(ts_ms=1000, message_id='m-1@mail.example', campaign_id='c', flow_id='welcome')
        >>> book.touch_of("s", "r", "m-2") is None
        True
        """
        wanted = message_id.strip().strip("<>")
        if not wanted:
            return None
        senders = self._senders
        order = [sender] if sender in senders else []
        order += [s for s in senders if s != sender]
        for s in order:
            for ts_ms, mid, label in reversed(senders[s].get(recipient_hash) or ()):
                if mid == wanted or mid.strip("<>") == wanted:
                    return _new(Touch, (ts_ms, mid) + label)
        return None

    def flows_touched(self, sender: str, recipient_hash: str, ts_ms: int) -> list[str]:
        """Distinct non-empty flow ids with a touch in the window of a conversion at `ts_ms`."""
        return sorted({label[1] for _, _, label in self._in_window(sender, recipient_hash, ts_ms)
                       if label[1]})

    def expire(self, watermark_ms: int) -> int:
        """Forget touches older than watermark - window; returns how many were dropped."""
        horizon = watermark_ms - self._window_ms
        if self._horizon_ms is not None and horizon <= self._horizon_ms:
            return 0  # the watermark did not move forward
        self._horizon_ms = horizon
        dropped = 0
        senders, queue, minutes = self._senders, self._queue, self._queue_minutes
        last = horizon // _MINUTE_MS  # the minute the horizon falls in
        while minutes and minutes[0] <= last:
            minute = minutes[0]
            if minute < last:  # wholly before the horizon: done with once cut
                heapq.heappop(minutes)
                queued = queue.pop(minute)
            else:  # the horizon's own minute: cut what is older, visit again next time
                queued = queue[minute]
            for i in range(0, len(queued), 2):
                recipients = senders.get(queued[i])
                if recipients is None:
                    continue
                history = recipients.get(queued[i + 1])
                if history is None or history[0][0] >= horizon:
                    continue  # cut already (another of its touches), or erased
                cut = bisect_left(history, horizon, key=_delivered_ms)
                dropped += cut
                if cut == len(history):
                    del recipients[queued[i + 1]]
                    if not recipients:
                        del senders[queued[i]]
                else:
                    del history[:cut]
            if minute == last:
                break
        # Campaigns come and go: rebuild the intern table once it holds mostly dead pairs.
        if dropped and len(self._labels) > 2 * self._labels_kept + 256:
            self._labels = {item[2]: item[2] for recipients in self._senders.values()
                            for history in recipients.values() for item in history}
            self._labels_kept = len(self._labels)
        return dropped

    def set_window(self, window_s: int) -> None:
        """A restart's setting for state learned before it (touches already expired stay so)."""
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s, self._window_ms = window_s, int(window_s * 1000)

    def forget(self, recipient_hash: str) -> int:
        """Drop one recipient's touches under every sender (erasure); how many went.

        Costs one dict lookup per sender, and a C-level scan of the expiry queue (which must
        not name an erased person either; erasures are rare).

        >>> book = AttributionBook()
        >>> book.touch("a.example", "r1", Touch(0, "<m1>", "c", "f"))
        >>> book.touch("b.example", "r1", Touch(5, "<m2>", "c", ""))
        >>> book.touch("b.example", "r2", Touch(6, "<m3>", "c", ""))
        >>> book.forget("r1"), len(book), book.credits("a.example", "r1", 10)
        (2, 1, [])
        """
        dropped = 0
        for sender in list(self._senders):
            recipients = self._senders[sender]
            history = recipients.pop(recipient_hash, None)
            if history is not None:
                dropped += len(history)
                if not recipients:
                    del self._senders[sender]
        # Every minute: capped touches left entries beyond the history's own minutes.
        queue = self._queue
        for minute, queued in queue.items():
            if recipient_hash in queued:
                queue[minute] = [x for i in range(0, len(queued), 2)
                                 if queued[i + 1] != recipient_hash
                                 for x in (queued[i], queued[i + 1])]
        return dropped

    def __len__(self) -> int:
        """Recipients remembered (over all senders)."""
        return sum(len(recipients) for recipients in self._senders.values())

    def approx_bytes(self) -> int:
        """Memory held, measured with sys.getsizeof (shared labels counted once)."""
        size = (sys.getsizeof(self._senders) + sys.getsizeof(self._labels)
                + sys.getsizeof(self._queue) + sys.getsizeof(self._queue_minutes)
                + sum(sys.getsizeof(queued) for queued in self._queue.values()))
        for label in self._labels.values():
            size += sys.getsizeof(label) + sys.getsizeof(label[0]) + sys.getsizeof(label[1])
        for sender, recipients in self._senders.items():
            size += sys.getsizeof(sender) + sys.getsizeof(recipients)
            for recipient_hash, history in recipients.items():
                size += sys.getsizeof(recipient_hash) + sys.getsizeof(history)
                for ts_ms, message_id, _ in history:
                    size += _TUPLE3_BYTES + sys.getsizeof(ts_ms) + sys.getsizeof(message_id)
        return size

    def snapshot(self) -> object:
        """Picklable state for recovery (a copy: later touches do not change it)."""
        return {"version": 1, "window_s": self.window_s, "half_life_s": self.half_life_s,
                "max_touches": self.max_touches, "horizon_ms": self._horizon_ms,
                "counters": (self.capped, self.duplicates, self.late),
                "senders": {sender: {recipient_hash: list(history)
                                     for recipient_hash, history in recipients.items()}
                            for sender, recipients in self._senders.items()}}

    @classmethod
    def restore(cls, state: Any) -> AttributionBook:
        book = cls(state["window_s"], state["half_life_s"], state["max_touches"])
        book._horizon_ms = state["horizon_ms"]
        book.capped, book.duplicates, book.late = state["counters"]
        labels = book._labels
        queue = book._queue
        for sender, recipients in state["senders"].items():
            book._senders[sender] = {
                recipient_hash: [(ts, message_id, labels.setdefault(tuple(label), tuple(label)))
                                 for ts, message_id, label in history]
                for recipient_hash, history in recipients.items()}
            for recipient_hash, history in recipients.items():  # the expiry queue, rebuilt
                for ts, _, _ in history:
                    queue.setdefault(ts // _MINUTE_MS, []).extend((sender, recipient_hash))
        book._queue_minutes = sorted(queue)  # a sorted list is a heap
        book._labels_kept = len(labels)
        return book

    def _in_window(self, sender: str, recipient_hash: str, ts_ms: int) -> list[_Stored]:
        history = self._senders.get(sender, {}).get(recipient_hash)
        if not history:
            return []
        lo = bisect_left(history, ts_ms - self._window_ms, key=_delivered_ms)
        hi = bisect_right(history, ts_ms, key=_delivered_ms)
        return history[lo:hi]


def _shares(model: str, touches: list[Touch], weights: list[float]) -> list[Credit]:
    """Normalised credits in whole millionths; the latest touch (the largest share) takes
    what rounding left, so the millionths add up to exactly one million."""
    scale = _MILLION / sum(weights)
    millionths = [round(w * scale) for w in weights[:-1]]
    millionths.append(_MILLION - sum(millionths))
    return [_new(Credit, (model, touch, m / _MILLION))
            for touch, m in zip(touches, millionths, strict=True)]
