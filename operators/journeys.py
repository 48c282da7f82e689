"""Flow journeys, on the recipient shards: who entered which flow, and what happened since.

A recipient *enters* a flow with the flow's first delivery to them and stays in
it until one of three things closes the journey:

- **goal**: a conversion that mailflow attributes to the flow (the same rule as
  the `convergence` table: a touch of the flow within the attribution window);
- **stopped**: an unsubscribe or complaint to the flow's sender (nothing more
  can come of the flow);
- **expired**: the flow's window (default 7 days after entering) passed first.

Every event that changes what we know about an open journey becomes a
`JourneyFact` for the models' step (operators/propensity.py), which re-scores
the recipient's *convergence propensity*: another delivery of the flow, a human
open, click or reply (machine opens and bot clicks change nothing), a hard
bounce, a conversion elsewhere (not attributed to this flow), and once a day
the passing of time without response. A fact carries what only the shard
knows: the journey so far (`JOURNEY_FEATURES`) and the recipient's history
(`HistoryBook.numbers`). Everything is event time; timers are a heap, so the
cost is what is due.

>>> book = JourneyBook(window_s=7 * 86_400)
>>> numbers = lambda: (0.0,)
>>> [f.kind for f in book.observe("delivered", 0, "r1", "s", "gmail.com", "welcome", 11,
...                               True, (), numbers)]
['enter']
>>> [f.kind for f in book.observe("click", 3_600_000, "r1", "s", "gmail.com", "welcome", 0,
...                               True, (), numbers)]
['click']
>>> [f.kind for f in book.tick(86_400_000, lambda r: (0.0,))]     # a day in: re-scored
['quiet']
>>> [(f.kind, f.flow_id) for f in book.observe("conversion", 90_000_000, "r1", "s", "", "",
...                                            0, True, ("welcome",), numbers)]
[('goal', 'welcome')]
>>> book.open_journeys()
0
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import NamedTuple

DAY_MS = 86_400_000
_HOUR_MS = 3_600_000

ENTER, DELIVERY, OPEN, CLICK, REPLY, BOUNCE, ELSEWHERE, QUIET = (
    "enter", "delivery", "open", "click", "reply", "bounce", "elsewhere", "quiet")
GOAL, STOPPED, EXPIRED = "goal", "stopped", "expired"
#: Kinds that close a journey (and give its label: positive for the goal only).
FINAL = frozenset({GOAL, STOPPED, EXPIRED})
KINDS = (ENTER, DELIVERY, OPEN, CLICK, REPLY, BOUNCE, ELSEWHERE, QUIET, GOAL, STOPPED, EXPIRED)

#: What `JourneyFact.journey` holds, in order (all scaled to about [0, 1]).
JOURNEY_FEATURES = ("position", "days_in", "interactions", "clicks", "replies",
                    "since_touch", "bounced", "elsewhere")

#: log1p(n) / 2 of the small counts a journey holds (the same floats, looked up: a fact's
#: features are built at every event of an open journey)
_HALF_LOG1P = tuple(math.log1p(n) / 2.0 for n in range(64))


def _half_log1p(n: int) -> float:
    return _HALF_LOG1P[n] if n < 64 else math.log1p(n) / 2.0


# journey record fields (a list: small to pickle)
(_ENTERED, _SENDER, _PROVIDER, _DELIVERIES, _INTERACTIONS, _CLICKS, _REPLIES, _LAST_TOUCH,
 _BOUNCED, _ELSEWHERE, _MESSAGE) = range(11)


class JourneyFact(NamedTuple):
    """What changed in one open journey (or how it closed), for the models' step."""

    ts_ms: int
    flow_id: str
    recipient_hash: str
    sender: str
    provider: str
    cohort_day: int  # UTC day of entering (days since 1970-01-01)
    kind: str  # one of KINDS
    message_key: int  # the flow's latest delivery to the recipient (its scores), 0: none
    journey: tuple[float, ...]  # JOURNEY_FEATURES
    recipient: tuple[float, ...]  # HistoryBook.numbers at ts_ms


class JourneyBook:
    """Open journeys per recipient and flow, and their timers (daily re-score, window end)."""

    def __init__(self, window_s: int = 7 * 86_400):
        self.window_ms = window_s * 1000
        self.open: dict[str, dict[str, list]] = {}  # recipient -> flow -> journey record
        self._timers: list[tuple[int, str, str, int]] = []  # (due, recipient, flow, entered)
        #: Flows each recipient ever had a journey in (their published propensities are
        #: keyed flow|recipient: an erasure must name every one).
        self.flows_of: dict[str, tuple[str, ...]] = {}

    def set_window(self, window_s: int) -> None:
        """A restart's window applies to open journeys (their timers re-check it)."""
        self.window_ms = window_s * 1000

    def due(self, ts_ms: int) -> bool:
        """Is a timer due by `ts_ms` (so that `tick` has work)?"""
        return bool(self._timers) and self._timers[0][0] <= ts_ms

    def open_journeys(self) -> int:
        return sum(len(flows) for flows in self.open.values())

    # -- events ----------------------------------------------------------------
    def observe(self, etype: str, ts_ms: int, recipient: str, sender: str, provider: str,
                flow_id: str, message_key: int, is_human: bool, attributed: tuple[str, ...],
                numbers: Callable[[], tuple[float, ...]], hard_bounce: bool = False
                ) -> list[JourneyFact]:
        """One event of `recipient`, in event-time order; the facts it makes."""
        journeys = self.open.get(recipient)
        facts: list[JourneyFact] = []
        if etype == "delivered":
            if not flow_id:
                return facts
            j = journeys.get(flow_id) if journeys else None
            if j is None:
                j = [ts_ms, sender, provider, 1, 0, 0, 0, -1, 0, 0, message_key]
                self.open.setdefault(recipient, {})[flow_id] = j
                flows = self.flows_of.get(recipient, ())
                if flow_id not in flows:
                    self.flows_of[recipient] = (*flows, flow_id)
                heapq.heappush(self._timers, (ts_ms + DAY_MS, recipient, flow_id, ts_ms))
                facts.append(self._fact(ts_ms, recipient, flow_id, j, ENTER, numbers))
            else:
                j[_DELIVERIES] += 1
                j[_MESSAGE] = message_key
                j[_PROVIDER] = provider
                facts.append(self._fact(ts_ms, recipient, flow_id, j, DELIVERY, numbers))
            return facts
        if not journeys:
            return facts
        if etype in ("open", "click", "reply"):
            j = journeys.get(flow_id)
            if j is not None and is_human:
                j[_INTERACTIONS] += 1
                j[_LAST_TOUCH] = ts_ms
                if etype == "click":
                    j[_CLICKS] += 1
                elif etype == "reply":
                    j[_REPLIES] += 1
                facts.append(self._fact(ts_ms, recipient, flow_id, j, etype, numbers))
        elif etype == "bounce":
            j = journeys.get(flow_id)
            if j is not None and hard_bounce:
                j[_BOUNCED] = 1
                facts.append(self._fact(ts_ms, recipient, flow_id, j, BOUNCE, numbers))
        elif etype in ("unsubscribe", "complaint"):
            for flow, j in list(journeys.items()):
                if j[_SENDER] == sender or flow == flow_id:
                    facts.append(self._close(ts_ms, recipient, flow, STOPPED, numbers))
        elif etype == "conversion":
            for flow in list(journeys):
                if flow in attributed:
                    facts.append(self._close(ts_ms, recipient, flow, GOAL, numbers))
                else:
                    j = journeys[flow]
                    j[_ELSEWHERE] += 1
                    facts.append(self._fact(ts_ms, recipient, flow, j, ELSEWHERE, numbers))
        return facts

    # -- time --------------------------------------------------------------------
    def tick(self, ts_ms: int, numbers_of: Callable[[str], tuple[float, ...]]
             ) -> list[JourneyFact]:
        """Event time reached `ts_ms`: daily re-scores and closed windows that are due."""
        facts: list[JourneyFact] = []
        timers, open_, window_ms = self._timers, self.open, self.window_ms
        pop, push = heapq.heappop, heapq.heappush
        while timers and timers[0][0] <= ts_ms:
            due, recipient, flow, entered = pop(timers)
            journeys = open_.get(recipient)
            j = journeys.get(flow) if journeys else None
            if j is None or j[_ENTERED] != entered:
                continue  # closed (or a later journey in the same flow): a stale timer
            numbers = numbers_of(recipient)
            end = entered + window_ms
            if due >= end:
                facts.append(self._close(due, recipient, flow, EXPIRED, numbers))
                continue
            facts.append(self._fact(due, recipient, flow, j, QUIET, numbers))
            push(timers, (due + DAY_MS if due + DAY_MS < end else end, recipient, flow,
                          entered))
        return facts

    # -- erasure ---------------------------------------------------------------
    def forget(self, recipient: str) -> tuple[int, tuple[str, ...]]:
        """Drop one recipient's journeys and timers (erasure): how many journeys were open,
        and every flow they ever had a journey in. Walks the timers (erasures are rare)."""
        dropped = len(self.open.pop(recipient, {}))
        # stale timers of closed journeys name them too
        timers = [t for t in self._timers if t[1] != recipient]
        if len(timers) < len(self._timers):
            heapq.heapify(timers)
            self._timers = timers
        return dropped, self.flows_of.pop(recipient, ())

    # -- facts -------------------------------------------------------------------
    def _close(self, ts_ms: int, recipient: str, flow: str, kind: str,
               numbers: Callable[[], tuple[float, ...]] | tuple[float, ...]) -> JourneyFact:
        journeys = self.open[recipient]
        j = journeys.pop(flow)
        if not journeys:
            del self.open[recipient]
        return self._fact(ts_ms, recipient, flow, j, kind, numbers)

    @staticmethod
    def _fact(ts_ms: int, recipient: str, flow: str, j: list, kind: str,
              numbers: Callable[[], tuple[float, ...]] | tuple[float, ...]) -> JourneyFact:
        """`numbers`: the recipient's history numbers, or how to get them."""
        entered = j[_ENTERED]
        last = j[_LAST_TOUCH]
        days_in = (ts_ms - entered) / (7 * DAY_MS)
        if last >= 0:  # log hours since the last human touch in this flow, capped at ~6 weeks
            since = math.log1p((ts_ms - last) / _HOUR_MS)
            since = (since if since < 7.0 else 7.0) / 7.0
        else:
            since = 1.0
        journey = (
            _half_log1p(j[_DELIVERIES]),
            days_in if days_in < 2.0 else 2.0,
            _half_log1p(j[_INTERACTIONS]),
            _half_log1p(j[_CLICKS]),
            _half_log1p(j[_REPLIES]),
            since,
            float(j[_BOUNCED]),
            _half_log1p(j[_ELSEWHERE]),
        )
        return JourneyFact(ts_ms, flow, recipient, j[_SENDER], j[_PROVIDER], entered // DAY_MS,
                           kind, j[_MESSAGE], journey,
                           numbers if type(numbers) is tuple else numbers())
