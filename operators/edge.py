"""Bots at the door: the tracking edge's verdict on one open or click, as it happens.

The edge (`mailflow track`) sees each hit before anything else does. It judges it
with the engine's own rules (`operators.engagement`: Apple Mail Privacy Protection,
image-proxy prefetch, scanner agents, no agent) so that the edge and the engine
agree, and adds what only the edge can see:

- a **honeypot** hit: the invisible link of a rewritten mail, which no person can
  click; the message is then remembered as *swept*;
- an **every-link sweep**: `SWEEP_LINKS` distinct links of one message within
  `SWEEP_WINDOW_S` seconds is a scanner walking the mail, not a reader;
- once a message is swept, its further clicks within `SWEPT_TTL_S` are the
  scanner's too;
- **too fast**: the token's `issued` time is a lower bound of the delivery time
  (a mail cannot arrive before its links were signed), so a click less than
  `min_human_click_s` (an open: `min_human_open_s`) after it is a machine's,
  whatever the delivery really was. Never the other way round: a late hit
  proves nothing.

Memory is bounded: one small record per recently clicked message, at most
`max_messages` of them (least recently used dropped first) and none older than
`ttl_s`. Pure: time comes from the caller (the request clock), the same sequence
of calls always gives the same verdicts.

>>> door = EdgeJudge(max_messages=4)
>>> door.judge("open", "m1", -1, "Mozilla/5.0", "17.58.1.2", 1000.0)
Verdict(is_human=False, reason='apple_proxy')
>>> [door.judge("click", "m2", link, "Mozilla/5.0 (X11) Firefox/128.0", "84.1.2.3",
...             2000.0 + link * 0.3).reason for link in range(4)]
['', '', 'sweep', 'sweep']
>>> door.judge("click", "m2", 0, "Mozilla/5.0 (X11) Firefox/128.0", "84.1.2.3", 2010.0)
Verdict(is_human=False, reason='sweep')
>>> door.judge("click", "m3", 7, "Mozilla/5.0 (X11) Firefox/128.0", "84.1.2.3", 3000.0,
...            honeypot=True)
Verdict(is_human=False, reason='honeypot')
>>> door.judge("click", "m4", 0, "Mozilla/5.0 (X11) Firefox/128.0", "84.1.2.3", 4000.0,
...            issued=3998.0), door.judge("open", "m5", -1, "Thunderbird/128", "84.1.2.3",
...                                       4000.0, issued=9000.0)
(Verdict(is_human=False, reason='too_fast'), Verdict(is_human=True, reason=''))
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from operators.engagement import (
    AGENT_APPLE,
    AGENT_EMPTY,
    AGENT_PROXY,
    AGENT_SCANNER,
    agent_kind,
)

__all__ = ["EdgeJudge", "Verdict", "EDGE_REASONS"]


class Verdict(NamedTuple):
    """The edge's hint, carried on the event as `is_human` and `bot_reason`."""

    is_human: bool
    reason: str  # "" when human


#: Reasons the edge gives; the first five are the engine's own (operators.engagement).
EDGE_REASONS = ("apple_proxy", "prefetch", "too_fast", "scanner_agent", "no_agent",
                "honeypot", "sweep")

HUMAN = Verdict(True, "")
_APPLE = Verdict(False, "apple_proxy")
_PREFETCH = Verdict(False, "prefetch")
_TOO_FAST = Verdict(False, "too_fast")
_SCANNER = Verdict(False, "scanner_agent")
_NO_AGENT = Verdict(False, "no_agent")
_HONEYPOT = Verdict(False, "honeypot")
_SWEEP = Verdict(False, "sweep")

#: Distinct links of one message within SWEEP_WINDOW_S that make a sweep.
SWEEP_LINKS = 3
SWEEP_WINDOW_S = 2.0
#: After a sweep or a honeypot hit, the message's clicks this long after are bots too
#: (the engine's own scan window: operators.engagement._SCAN_WINDOW_S).
SWEPT_TTL_S = 60.0
_APPLE_IP_PREFIXES = ("17.", "::ffff:17.")


class _Seen:
    """What the edge remembers of one message: the current click window and whether
    (until when) it counts as swept. Holds at most SWEEP_LINKS link numbers."""

    __slots__ = ("window_start", "links", "swept_until", "last")

    def __init__(self, now: float) -> None:
        self.window_start = now
        self.links: list[int] = []
        self.swept_until = 0.0
        self.last = now


class EdgeJudge:
    """Per-message memory for the edge's verdicts (bounded LRU, TTL).

    `judge(kind, message_id, link, user_agent, ip, now, issued=0, honeypot=False)`:
    `kind` is "open" or "click"; `issued` the token's signing time (0: unknown).
    """

    def __init__(self, max_messages: int = 100_000, ttl_s: float = 600.0,
                 min_human_open_s: float = 2.0, min_human_click_s: float = 5.0,
                 prefetch_window_s: float = 60.0) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        self.max_messages = max_messages
        self.ttl_s = ttl_s
        self.min_human_open_s = min_human_open_s
        self.min_human_click_s = min_human_click_s
        self.prefetch_window_s = prefetch_window_s
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self.evicted = 0  # dropped for room (LRU), not by age

    def __len__(self) -> int:
        return len(self._seen)

    def judge(self, kind: str, message_id: str, link: int, user_agent: str, ip: str,
              now: float, issued: float = 0.0, honeypot: bool = False) -> Verdict:
        """The verdict on one hit (and what later hits of the message need remembered)."""
        agent = agent_kind(user_agent)
        # a link "signed in the future" is clock skew between the signer and the edge:
        # then the signing time bounds nothing
        since_issued = now - issued if 0 < issued <= now else None
        if kind == "open":
            # Apple's proxy opens every message of every Apple Mail user: never a reader.
            if agent == AGENT_APPLE or ip.startswith(_APPLE_IP_PREFIXES):
                return _APPLE
            if agent == AGENT_SCANNER:
                return _SCANNER
            if since_issued is not None:
                # issued <= delivery: these bounds are conservative, never a guess
                if agent == AGENT_PROXY and since_issued < self.prefetch_window_s:
                    return _PREFETCH
                if since_issued < self.min_human_open_s:
                    return _TOO_FAST
            return HUMAN
        # a click (a honeypot hit is one too)
        seen = self._remember(message_id, now)
        if honeypot:
            seen.swept_until = max(seen.swept_until, now + SWEPT_TTL_S)
            return _HONEYPOT
        swept = self._count_link(seen, link, now)
        if agent == AGENT_SCANNER:
            return _SCANNER
        if agent == AGENT_EMPTY:
            return _NO_AGENT  # browsers always send one; HTTP tools often do not
        if swept:
            return _SWEEP
        if since_issued is not None and since_issued < self.min_human_click_s:
            return _TOO_FAST
        return HUMAN

    # --- memory ---------------------------------------------------------------------------
    def _remember(self, message_id: str, now: float) -> _Seen:
        seen = self._seen.get(message_id)
        if seen is not None and now - seen.last > self.ttl_s:
            seen = None  # stale: judged afresh
        if seen is None:
            seen = _Seen(now)
            self._seen[message_id] = seen
            self.expire(now)
            while len(self._seen) > self.max_messages:
                self._seen.popitem(last=False)
                self.evicted += 1
        else:
            self._seen.move_to_end(message_id)
        seen.last = max(seen.last, now)
        return seen

    @staticmethod
    def _count_link(seen: _Seen, link: int, now: float) -> bool:
        """Count one click into the message's window; True when the message is swept."""
        if now < seen.swept_until:
            return True
        if now - seen.window_start > SWEEP_WINDOW_S:
            seen.window_start = now
            seen.links = []
        if link not in seen.links:
            seen.links.append(link)
        if len(seen.links) >= SWEEP_LINKS:
            seen.swept_until = now + SWEPT_TTL_S
            seen.links = []
            return True
        return False

    def expire(self, now: float) -> int:
        """Forget messages not clicked for `ttl_s`; return how many. Cheap: stops at the
        first recent one (the dict is in last-use order)."""
        dropped = 0
        seen = self._seen
        while seen:
            message_id, first = next(iter(seen.items()))
            if now - first.last <= self.ttl_s:
                break
            del seen[message_id]
            dropped += 1
        return dropped
