"""Flow journeys with a known truth: generated traffic for measuring convergence prediction.

`mailflow.generator` mails a population at random, one message at a time; nothing in it is
a journey. This module simulates *journeys*: recipients enter a mailflow (the first
delivered message of the flow), get its steps on a schedule and reach its goal (a
`conversion` from the same sender) within the flow's window, or not. The simulator draws,
for every journey, the TRUE probability of reaching the goal, so the engine's per-recipient
convergence propensities and its per-cohort forecasts can be measured against the truth
(`bench/convergence.py`).

The world (all of it seeded; same seed and start, same bytes and the same truth):

- **Senders and flows** (`FlowSpec`, `DEFAULT_FLOWS`): ``news.acme.example`` runs
  ``welcome`` (steps on days 0, 1, 3, 5; an A/B ``variant`` whose B arm converts better),
  ``mail.shop.example`` runs ``cart_abandon`` (days 0, 1, 3) and ``winback`` (0, 3, 6),
  ``notify.saas.example`` runs ``onboarding`` (0, 1, 2, 4, 6). Each flow has a goal (the
  conversion's ``goal``, ``value``, ``currency``) and a window (default 7 days after
  entering). Steps go out at the entry's time of day; a flow stops mailing a recipient who
  reached its goal, unsubscribed, complained or bounced.
- **Recipients**: a population over the real provider mix of `mailflow.generator`, each
  with a persistent propensity ``z ~ N(0, 1)`` (the same person in every flow and at every
  sender), a preferred hour, a mail client and home IP; Apple Mail users (Mail Privacy
  Protection) and company domains behind link scanners as in the generator; about 1.2% of
  the addresses do not exist.
- **Cohorts**: on each simulated day ``d`` (``0 <= d < days``) about ``entrants_per_day``
  recipients (x the flow's ``volume``, +-10% day to day) enter each flow, at hours drawn from
  the reading-hour curve. A recipient enters a flow at most once, and is in at most one
  journey per sender at a time, with a cool-down long enough that no message of an earlier
  journey of the same sender is inside the attribution window of a later one: so every
  conversion is attributed (by the engine's rule: a delivery of the flow by the same sender
  to the same recipient within the 7 days before it) to exactly the journey it belongs to.
- **The truth per journey**::

      logit(true_p) = logit(flow.base_rate) + RECIPIENT_SCALE * z
                      + PROVIDER_EFFECT[dialect] (+ CORPORATE_EFFECT) + variant effect
                      + shift(flow, d)

  ``reached ~ Bernoulli(true_p)`` exactly (nothing else decides it). ``shifts`` (a mapping
  ``(flow_id, d) -> logit delta``) make one day's cohort of a flow better or worse: the
  knob to make "this week's cohort" fall behind and check the alert.
- **What a journey looks like** follows from its outcome: the reached ones convert at
  ``entered + window * Beta(1.2, 3)`` (so most early, some late), mostly right after a
  human open and click of the latest step before that; their earlier steps are opened and
  clicked more often, and their rare replies sound interested (the others' refuse, ask to
  be removed or say "wrong person"). Recipients who will not convert open less (a little
  more the higher their propensity), some unsubscribe or complain (then nothing more is
  sent), and a few (`late_rate`) convert after the window closed: attributed by the rolling
  metric, but not "reached" (a check of the cohort definition). Non-existent addresses
  bounce hard at step 0 and never enter. Apple Mail users' every delivered message is
  opened by Apple's proxy (``Mozilla/5.0`` from 17/8) seconds later, whatever their intent,
  and company link scanners click every link 1-5 s after delivery: neither says anything
  about the goal.
- **Newsletters** (optional, `newsletters` > 0): every simulated day each sender mails that
  share of its list a campaign message without a `flow_id`; people with a higher ``z`` open
  and click them more often, so a recipient's history says something about their journeys
  (as in real lists). No conversions, unsubscribes or complaints come from them, and they
  draw from their own random stream: the journeys and the truth are the same with or
  without them.

Definitions the truth uses (the same as the contracts in DESIGN.md): ``entered_ms`` is
the delivery time of step 0; ``cohort_day = entered_ms // 86_400_000`` (the UTC day);
``reached`` means a conversion at ``entered_ms <= t < entered_ms + window``;
``recipient_hash`` is `RecipientHasher(hash_key).recipient(address)` with the key the job
uses (tests: `DEV_HASH_KEY`). Per flow and cohort: ``entrants``, ``expected`` (the true
expected convergence score, sum of true_p / entrants), ``converged`` and ``realised``
(converged / entrants).

Events come out in event-time order as `GeneratedEvent`s (the type `mailflow generate`
produces to Kafka or writes as JSONL), wire format v1, from ``start`` until ``days +
tail_days`` days later (by default long enough that every journey has played out).

>>> sim = JourneySimulator(seed=3, start=1_795_219_200.0, days=2, entrants_per_day=20)
>>> events = list(sim.events())
>>> all(a.ts <= b.ts for a, b in zip(events, events[1:]))
True
>>> events == list(sim.events())  # deterministic
True
>>> truth = sim.truth()
>>> sorted({j.flow_id for j in truth.journeys})
['cart_abandon', 'onboarding', 'welcome', 'winback']
>>> c = truth.cohorts[0]
>>> c.entrants == sum(1 for j in truth.journeys if (j.flow_id, j.cohort_day) == (c.flow_id,
...                                                                             c.cohort_day))
True
>>> Shift.parse("winback:3:-0.8")
Shift(flow_id='winback', day=3, delta=-0.8)
"""

from __future__ import annotations

import heapq
import math
import os
import random
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import orjson

from mailflow.generator import (
    _APPLE_BROWSERS,
    _APPLE_PROXY_NETS,
    _APPLE_PROXY_UA,
    _BROWSERS,
    _CORPORATE,
    _DOMAINS,
    _GOOGLE_PROXY_NETS,
    _HOME_FIRST_OCTETS,
    _HOUR_WEIGHTS,
    _OPEN_CLIENTS,
    _PATHS,
    _SCANNER_NETS,
    _SCANNERS,
    _UA_GMAIL_PROXY,
    _UA_YAHOO_PROXY,
    _YAHOO_PROXY_NETS,
    GeneratedEvent,
    _pick,
    _TimestampText,
)
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from schemas.mailbox_providers import provider_key
from schemas.topics import TOPIC_BY_TYPE

__all__ = ["DEFAULT_FLOWS", "CohortTruth", "FlowSpec", "JourneySimulator", "JourneyTruth",
           "Shift", "Truth", "read_truth"]

DAY_MS = 86_400_000
_HOUR_MS = 3_600_000

#: Weight of the recipient's persistent propensity z ~ N(0, 1) on the logit of true_p.
RECIPIENT_SCALE = 1.0
#: Logit effect of the mailbox provider (MTA dialect of the recipient's domain).
PROVIDER_EFFECT = {"gmail": 0.0, "microsoft": -0.1, "yahoo": -0.25, "apple": 0.2, "gmx": -0.1,
                   "webde": -0.1, "tonline": -0.2, "generic": -0.2}
#: Extra logit effect for company domains (work inboxes convert less on consumer offers).
CORPORATE_EFFECT = -0.3

_REPLIES_REACHED = (
    "Sounds great, how do I get started?",
    "Yes please, I would like to know more about this offer.",
    "Is this still available? I want to order today.",
    "Thanks! Quick question before I sign up: does it work on my phone too?",
    "I tried to log in but the page shows an error. Can you help?",
)
_REPLIES_MISSED = (
    "Not interested, thanks.",
    "No thank you, this is not for me.",
    "Please stop sending me these emails.",
    "Unsubscribe me please.",
    "I think you have the wrong person, I never signed up for this.",
    "What is this about? I don't remember signing up.",
)


@dataclass(frozen=True)
class FlowSpec:
    """One mailflow: who sends it, its steps (days after entering), goal and true base rate.

    `base_rate` is the true convergence probability of an average recipient (z = 0, a
    provider without effect); `variants` pairs each A/B arm with its logit effect.
    """

    flow_id: str
    sender: str
    steps_days: tuple[float, ...]
    base_rate: float
    goal: str
    value_median: float = 0.0
    currency: str = "USD"
    volume: float = 1.0
    variants: tuple[tuple[str, float], ...] = ()
    site: str = ""

    def __post_init__(self) -> None:
        if not self.steps_days or self.steps_days[0] != 0:
            raise ValueError(f"{self.flow_id}: the first step must be on day 0")
        if list(self.steps_days) != sorted(set(self.steps_days)):
            raise ValueError(f"{self.flow_id}: step days must increase")
        if not 0 < self.base_rate < 1:
            raise ValueError(f"{self.flow_id}: base_rate must be in (0, 1)")


DEFAULT_FLOWS: tuple[FlowSpec, ...] = (
    FlowSpec("welcome", "news.acme.example", (0, 1, 3, 5), 0.12, "first_purchase", 60.0,
             "USD", variants=(("A", 0.0), ("B", 0.25)), site="www.acme.example"),
    FlowSpec("cart_abandon", "mail.shop.example", (0, 1, 3), 0.2, "purchase", 45.0, "EUR",
             site="shop.example"),
    FlowSpec("winback", "mail.shop.example", (0, 3, 6), 0.05, "purchase", 45.0, "EUR",
             site="shop.example"),
    FlowSpec("onboarding", "notify.saas.example", (0, 1, 2, 4, 6), 0.25, "activation", 0.0,
             "USD", site="app.saas.example"),
)


class Shift(NamedTuple):
    """A logit shift of one flow's cohort entering on simulated day `day` (0 = the first)."""

    flow_id: str
    day: int
    delta: float

    @classmethod
    def parse(cls, text: str) -> Shift:
        """``"FLOW:DAY:DELTA"``, e.g. ``"cart_abandon:8:-0.7"`` (a worse day-8 cohort).

        >>> Shift.parse("welcome:x:1")
        Traceback (most recent call last):
        ...
        ValueError: shift must be FLOW:DAY:DELTA (e.g. cart_abandon:8:-0.7), got 'welcome:x:1'
        """
        parts = text.strip().split(":")
        try:
            flow_id, day, delta = parts
            shift = cls(flow_id.strip(), int(day), float(delta))
        except ValueError:
            raise ValueError("shift must be FLOW:DAY:DELTA (e.g. cart_abandon:8:-0.7), "
                             f"got {text!r}") from None
        if not shift.flow_id or shift.day < 0 or not math.isfinite(shift.delta):
            raise ValueError(f"shift needs a flow, a day >= 0 and a finite delta, got {text!r}")
        return shift


class JourneyTruth(NamedTuple):
    """What really happened to one recipient in one flow (one line of the truth file)."""

    flow_id: str
    sender: str
    recipient: str
    recipient_hash: str
    provider: str
    variant: str
    day: int                # simulated day of entering (0 = the first)
    entered_ms: int         # delivery of step 0
    cohort_day: int         # entered_ms // DAY_MS
    true_p: float
    reached: bool
    reached_ms: int | None  # the goal's conversion, within the window
    apple: bool             # Apple Mail (every delivery gets a machine open)
    outcome: str            # reached | unsubscribed | complained | late | none


class CohortTruth(NamedTuple):
    """Per flow x cohort_day: how many entered, the true expected score and the realised."""

    flow_id: str
    cohort_day: int
    entrants: int
    expected_converged: float   # sum of true_p
    expected: float             # sum of true_p / entrants: the true expected score
    converged: int
    realised: float             # converged / entrants
    sd: float                   # sqrt(sum p(1-p)) / entrants: the Bernoulli noise of realised
    shift: float                # logit shift applied to the cohort (0: none)
    window_days: float


@dataclass
class Truth:
    """Every journey and every cohort of a simulation."""

    journeys: list[JourneyTruth] = field(default_factory=list)
    cohorts: list[CohortTruth] = field(default_factory=list)
    window_days: float = 7.0

    def by_journey(self) -> dict[tuple[str, str], JourneyTruth]:
        """Journeys by (flow_id, recipient_hash): a recipient enters a flow at most once."""
        return {(j.flow_id, j.recipient_hash): j for j in self.journeys}

    def write_jsonl(self, path: str | os.PathLike[str]) -> int:
        """One JSON object a line: ``{"kind": "journey", ...}`` then ``{"kind": "cohort",
        ...}``; returns the number of lines."""
        n = 0
        with open(path, "wb") as out:
            for kind, rows in (("journey", self.journeys), ("cohort", self.cohorts)):
                for row in rows:
                    out.write(orjson.dumps({"kind": kind, **row._asdict()}))
                    out.write(b"\n")
                    n += 1
        return n


def read_truth(path: str | os.PathLike[str]) -> Truth:
    """The `Truth` a ``--truth FILE`` holds."""
    truth = Truth()
    with open(path, "rb") as src:
        for line in src:
            if not line.strip():
                continue
            obj = orjson.loads(line)
            kind = obj.pop("kind")
            if kind == "journey":
                truth.journeys.append(JourneyTruth(**obj))
            elif kind == "cohort":
                truth.cohorts.append(CohortTruth(**obj))
                truth.window_days = obj["window_days"]
    return truth


class _Journey(NamedTuple):
    truth: JourneyTruth | None      # None: bounced at step 0, never entered
    plan: list                      # (ts_ms, type, base, extra)
    sent_ms: int


class JourneySimulator:
    """Deterministic journeys: `events()` yields `GeneratedEvent`s, `truth()` what happened.

    `start` (epoch seconds; default: UTC midnight ``days + tail_days + 1`` days ago, so no
    event lies in the future) is day 0's beginning. `shifts` maps ``(flow_id, day)`` to a
    logit delta, or is an iterable of `Shift`. `recipients` (default: sized so every flow
    finds fresh recipients) is the population size. `late_rate`: the share of recipients
    who do not reach the goal but convert within two days after their window closed.
    `newsletters`: the share of each sender's list mailed a newsletter each day (0: none).
    """

    def __init__(self, seed: int = 1, start: float | None = None, days: int = 10,
                 entrants_per_day: int = 500, flows: Iterable[FlowSpec] = DEFAULT_FLOWS,
                 window_days: float = 7.0,
                 shifts: Mapping[tuple[str, int], float] | Iterable[Shift] | None = None,
                 recipients: int | None = None, hash_key: bytes = DEV_HASH_KEY,
                 tail_days: float | None = None, late_rate: float = 0.02,
                 newsletters: float = 0.0) -> None:
        self.flows = tuple(flows)
        if not self.flows:
            raise ValueError("at least one flow is needed")
        if len({f.flow_id for f in self.flows}) != len(self.flows):
            raise ValueError("flow ids must be unique")
        if days < 1 or entrants_per_day < 1:
            raise ValueError("days and entrants_per_day must be at least 1")
        if not window_days > 0:
            raise ValueError("window_days must be positive")
        for f in self.flows:
            if f.steps_days[-1] >= window_days:
                raise ValueError(f"{f.flow_id}: every step must be inside the window")
        self.seed = seed
        self.days = days
        self.entrants_per_day = entrants_per_day
        self.window_days = float(window_days)
        self.window_ms = int(round(window_days * DAY_MS))
        self.late_rate = late_rate
        if not 0 <= newsletters <= 1:
            raise ValueError("newsletters must be a share of the list, in [0, 1]")
        self.newsletters = newsletters
        self.tail_days = float(window_days + 3 if tail_days is None else tail_days)
        if start is None:
            today = int(time.time()) // 86_400 * 86_400
            start = today - 86_400 * math.ceil(days + self.tail_days + 1)
        self.start_ms = int(round(float(start) * 1000))
        self.end_ms = self.start_ms + int(round((days + self.tail_days) * DAY_MS))
        self.shifts: dict[tuple[str, int], float] = {}
        if shifts is not None:
            items = shifts.items() if isinstance(shifts, Mapping) else (
                ((s.flow_id, s.day), s.delta) for s in shifts)
            known = {f.flow_id for f in self.flows}
            for (flow_id, day), delta in items:
                if flow_id not in known:
                    raise ValueError(f"shift of unknown flow {flow_id!r}: "
                                     f"flows are {', '.join(sorted(known))}")
                self.shifts[(flow_id, int(day))] = self.shifts.get((flow_id, int(day)), 0.0) \
                    + float(delta)
        self.hasher = RecipientHasher(hash_key)
        self._tag = f"j{seed & 0xFFFFFFFF:08x}"
        self.senders = sorted({f.sender for f in self.flows})
        per_sender = {s: sum(f.volume for f in self.flows if f.sender == s)
                      for s in self.senders}
        need = max(per_sender.values()) * entrants_per_day * days * 1.15
        # Each sender mails 60-80% of the population; 2.5x what it needs leaves rejection
        # sampling of fresh recipients cheap to the last day.
        self.population = recipients if recipients is not None else max(
            1000, int(math.ceil(2.5 * need / 0.6)))
        self._build_population(self.population)
        self._links = {f.flow_id: [self._step_links(f, k) for k in range(len(f.steps_days))]
                       for f in self.flows}

    # --- setup ---------------------------------------------------------------------
    def _build_population(self, n: int) -> None:
        rng = np.random.default_rng([self.seed, 11])
        shares = np.array([s for _, s, _, _ in _DOMAINS])
        domain_ix = rng.choice(len(_DOMAINS), size=n, p=shares / shares.sum())
        apple = rng.random(n) < np.array([a for *_, a in _DOMAINS])[domain_ix]
        z = rng.standard_normal(n)
        hour = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
        notified = rng.random(n) < 0.3
        invalid = rng.random(n) < 0.012
        client_u = rng.random(n)
        browser_u = rng.random(n)
        octets = rng.integers(1, 255, size=(n, 3))
        first = rng.choice(np.array(_HOME_FIRST_OCTETS), size=n)
        domains = [_DOMAINS[d][0] for d in domain_ix.tolist()]
        self._address = [f"member{i}@{d}" for i, d in enumerate(domains)]
        self._dialect = [_DOMAINS[d][2] for d in domain_ix.tolist()]
        self._provider = [provider_key(d) for d in domains]
        self._corporate = [d in _CORPORATE for d in domains]
        self._scanner = [_SCANNERS[d % len(_SCANNERS)] for d in domain_ix.tolist()]
        self._apple = apple.tolist()
        self._z = z.tolist()
        self._hour = hour.tolist()
        self._notified = notified.tolist()
        self._invalid = invalid.tolist()
        self._home_ip = [f"{a}.{b}.{c}.{d}"
                         for a, (b, c, d) in zip(first.tolist(), octets.tolist(), strict=True)]
        self._open_ua = []
        self._click_ua = []
        for i in range(n):
            if apple[i]:
                clients, browsers = _OPEN_CLIENTS["apple"], _APPLE_BROWSERS
            else:
                clients = _OPEN_CLIENTS.get(self._dialect[i], _OPEN_CLIENTS["generic"])
                browsers = _BROWSERS
            self._open_ua.append(_pick(clients, client_u[i]))
            self._click_ua.append(_pick(browsers, browser_u[i]))
        # Who is on each sender's list.
        self._members: dict[str, list[int]] = {}
        for sender in self.senders:
            size = max(1, int(n * rng.uniform(0.6, 0.8)))
            self._members[sender] = sorted(rng.choice(n, size=size, replace=False).tolist())

    def _step_links(self, flow: FlowSpec, k: int) -> tuple[str, ...]:
        site = flow.site or flow.sender
        cid = f"{flow.flow_id}-{k + 1}"
        return tuple(f"https://{site}/{_PATHS[(k + j) % len(_PATHS)]}?utm_source=email"
                     f"&utm_medium=email&utm_campaign={cid}&utm_content=link{j + 1}"
                     for j in range(3))

    # --- the truth of one journey -----------------------------------------------------
    def true_p(self, flow: FlowSpec, r: int, variant_effect: float, day: int) -> float:
        """The true probability that recipient `r` reaches `flow`'s goal, entering on `day`."""
        logit = (math.log(flow.base_rate / (1 - flow.base_rate)) + RECIPIENT_SCALE * self._z[r]
                 + PROVIDER_EFFECT.get(self._dialect[r], 0.0)
                 + (CORPORATE_EFFECT if self._corporate[r] else 0.0)
                 + variant_effect + self.shifts.get((flow.flow_id, day), 0.0))
        return 1.0 / (1.0 + math.exp(-logit))

    # --- days, entrants, journeys -----------------------------------------------------
    def _days(self) -> Iterator[tuple[int, list[_Journey]]]:
        """Each simulated day and the journeys entering on it, in a fixed order."""
        rng = random.Random(self.seed)
        hour_cum = np.cumsum(_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()).tolist()
        used: dict[str, set[int]] = {f.flow_id: set() for f in self.flows}
        busy: dict[str, dict[int, int]] = {s: {} for s in self.senders}
        # No touch of an earlier journey may fall into the attribution window (7 days)
        # before a later journey's conversions, nor a late conversion into a later journey.
        cool_ms = self.window_ms + max(7 * DAY_MS, 2 * DAY_MS + _HOUR_MS) + DAY_MS
        jid = 0
        for d in range(self.days):
            day0 = self.start_ms + d * DAY_MS
            journeys: list[_Journey] = []
            for flow in self.flows:
                n = max(1, round(self.entrants_per_day * flow.volume
                                 * math.exp(0.1 * rng.gauss(0.0, 1.0))))
                members = self._members[flow.sender]
                seen, sender_busy = used[flow.flow_id], busy[flow.sender]
                for _ in range(n):
                    hour = bisect_right(hour_cum, rng.random())
                    t0 = day0 + min(hour, 23) * _HOUR_MS + int(rng.random() * (_HOUR_MS - 60_000))
                    r = self._fresh(rng, members, seen, sender_busy, t0)
                    seen.add(r)
                    sender_busy[r] = t0 + cool_ms
                    jid += 1
                    journeys.append(self._journey(rng, flow, d, r, t0, jid))
            yield d, journeys

    @staticmethod
    def _fresh(rng: random.Random, members: list[int], seen: set[int], busy: dict[int, int],
               t0: int) -> int:
        for _ in range(200):
            r = members[int(rng.random() * len(members))]
            if r not in seen and busy.get(r, 0) <= t0:
                return r
        for r in members:  # nearly exhausted: take the first free one
            if r not in seen and busy.get(r, 0) <= t0:
                return r
        raise ValueError("the recipient population is too small for these flows and days: "
                         "pass a larger `recipients`")

    def _journey(self, rng: random.Random, flow: FlowSpec, d: int, r: int, t0: int,
                 jid: int) -> _Journey:
        rnd = rng.random
        gauss = rng.gauss
        address = self._address[r]
        variant, v_effect = "", 0.0
        if flow.variants:
            variant, v_effect = flow.variants[int(rnd() * len(flow.variants))]
        plan: list = []
        links = self._links[flow.flow_id]

        def base(k: int, ts: int) -> dict[str, Any]:
            b = {"sender": flow.sender, "recipient": address,
                 "message_id": f"<{ts:x}.{jid:x}.{k}.{self._tag}@{flow.sender}>",
                 "campaign_id": f"{flow.flow_id}-{k + 1}", "flow_id": flow.flow_id}
            if variant:
                b["variant"] = variant
            return b

        # Step 0: a non-existent address bounces and never enters.
        if self._invalid[r]:
            b = base(0, t0)
            plan.append((t0, "sent", b, None))
            plan.append((t0 + 400 + int(900 * math.exp(0.5 * gauss(0.0, 1.0))), "bounce", b,
                         {"smtp_code": 550, "smtp_status": "5.1.1", "bounce_kind": "hard",
                          "diagnostic": "550 5.1.1 <recipient>: Recipient address rejected: "
                                        "User unknown in virtual mailbox table"}))
            return _Journey(None, plan, t0)

        p = self.true_p(flow, r, v_effect, d)
        reached = rnd() < p
        delivery = [t0 + int(flow.steps_days[k] * DAY_MS) + (int(rnd() * 600_000) if k else 0)
                    for k in range(len(flow.steps_days))]
        deliver_lag = [300 + int(1200 * math.exp(0.8 * gauss(0.0, 1.0))) for _ in delivery]
        entered = delivery[0] + deliver_lag[0]
        engaged = 1.0 / (1.0 + math.exp(-self._z[r]))  # how much this person reads mail
        conv_ms: int | None = None
        stop_ms = self.end_ms * 2   # no step is sent at or after this
        outcome = "none"
        if reached:
            u = min(rng.betavariate(1.2, 3.0), 0.995)
            conv_ms = max(entered + 120_000, entered + int(self.window_ms * u))
            stop_ms = conv_ms
            outcome = "reached"
        negative: tuple[int, str] | None = None
        for k, ts in enumerate(delivery):
            if ts >= stop_ms:
                break
            td = ts + deliver_lag[k]
            b = base(k, ts)
            plan.append((ts, "sent", b, None))
            plan.append((td, "delivered", b, None))
            self._machines(rng, r, b, td, links[k], plan)
            nxt = (delivery[k + 1] if k + 1 < len(delivery) else entered + self.window_ms)
            converting = reached and nxt >= conv_ms  # the last step before the conversion
            if converting:
                self._converting(rng, r, b, td, conv_ms, links[k], plan)
                continue
            p_open = 0.06 + 0.3 * engaged + (0.3 if reached else 0.0)
            if rnd() < p_open:
                to = td + self._open_delay(rng, r)
                if to < nxt:
                    plan.append((to, "open", b, self._open_extra(rng, r)))
                    if rnd() < (0.45 if reached else 0.12):
                        tc = to + 4000 + int(20_000 * math.exp(gauss(0.0, 1.0)))
                        plan.append((tc, "click", b, {"user_agent": self._click_ua[r],
                                                      "ip": self._home_ip[r],
                                                      "url": links[k][int(rnd() * 3)]}))
                    if rnd() < (0.03 if reached else 0.006):
                        plan.append((to + int(120_000 * math.exp(gauss(0.0, 1.0))), "reply", b,
                                     self._reply(rng, reached, f"{jid:x}-{k}", flow, k)))
                    if not reached and rnd() < 0.03 + 0.03 * (1 - engaged):
                        negative = (min(to + 5000 + int(30_000 * math.exp(gauss(0.0, 1.0))),
                                        nxt - 1000), "unsubscribe")
            if not reached and negative is None:
                x = rnd()
                if x < 0.002:
                    negative = (min(td + int(3_600_000 * math.exp(gauss(0.0, 1.0))), nxt - 1000),
                                "complaint")
                elif x < 0.002 + 0.01 * (1 - engaged):  # List-Unsubscribe from the inbox
                    negative = (min(td + int(7_200_000 * math.exp(gauss(0.0, 1.0))), nxt - 1000),
                                "unsubscribe")
            if negative is not None:
                ts_neg = max(negative[0], td + 1000)
                plan.append((ts_neg, negative[1], b, None))
                outcome = "unsubscribed" if negative[1] == "unsubscribe" else "complained"
                break
        if not reached and negative is None and rnd() < self.late_rate:
            late = entered + self.window_ms + int(rnd() * 2 * DAY_MS) + 60_000
            plan.append((late, "conversion", None, self._goal(rng, flow, address)))
            outcome = "late"
        if conv_ms is not None:
            plan.append((conv_ms, "conversion", None, self._goal(rng, flow, address)))
        truth = JourneyTruth(flow.flow_id, flow.sender, address, self.hasher.recipient(address),
                             self._provider[r], variant, d, entered, entered // DAY_MS, p,
                             reached, conv_ms, self._apple[r], outcome)
        return _Journey(truth, plan, t0)

    def _reply(self, rng: random.Random, reached: bool, ref: str, flow: FlowSpec,
               k: int) -> dict[str, str]:
        """A human reply whose text follows the outcome: interest and questions from those
        who will convert; refusals, unsubscribe requests and "wrong person" from the rest."""
        texts = _REPLIES_REACHED if reached else _REPLIES_MISSED
        return {"reply_id": f"r-{self._tag}-{ref}",
                "subject": f"Re: {flow.flow_id.replace('_', ' ')} ({k + 1})",
                "body": texts[int(rng.random() * len(texts))]}

    def _goal(self, rng: random.Random, flow: FlowSpec, address: str) -> dict[str, Any]:
        """A conversion: about the recipient and the sender, not a message (no flow_id)."""
        goal: dict[str, Any] = {"sender": flow.sender, "recipient": address, "goal": flow.goal}
        if flow.value_median:
            goal["value"] = round(flow.value_median * math.exp(0.6 * rng.gauss(0.0, 1.0)), 2)
            goal["currency"] = flow.currency
        return goal

    def _converting(self, rng: random.Random, r: int, b: dict, td: int, conv_ms: int,
                    links: tuple[str, ...], plan: list) -> None:
        """The touch that converts: a human open and a click shortly before the goal (85%),
        or the recipient comes back on their own (no interaction with the message)."""
        if rng.random() >= 0.85:
            return
        gap = conv_ms - td
        if gap < 20_000:  # the goal came before the message was read
            return
        tc = conv_ms - min(int(300_000 * math.exp(rng.gauss(0.0, 1.0))), gap // 2)
        to = tc - min(4000 + int(20_000 * math.exp(rng.gauss(0.0, 1.0))), (tc - td) // 2)
        if to <= td:
            return
        plan.append((to, "open", b, self._open_extra(rng, r)))
        plan.append((tc, "click", b, {"user_agent": self._click_ua[r], "ip": self._home_ip[r],
                                      "url": links[0]}))

    def _machines(self, rng: random.Random, r: int, b: dict, td: int,
                  links: tuple[str, ...], plan: list) -> None:
        """Apple's privacy proxy opens every delivered message; scanners click every link."""
        rnd = rng.random
        if self._apple[r]:
            net = _APPLE_PROXY_NETS[int(rnd() * len(_APPLE_PROXY_NETS))]
            plan.append((td + 800 + int(rng.expovariate(1 / 3000)), "open", b,
                         {"user_agent": _APPLE_PROXY_UA,
                          "ip": f"{net}{int(rnd() * 256)}.{int(rnd() * 254) + 1}"}))
        if self._corporate[r] and rnd() < 0.35 or rnd() < 0.003:
            tb = td + 1000 + int(rnd() * 3500)
            second_end = tb - tb % 1000 + 999
            ua = self._scanner[r] if self._corporate[r] else _SCANNERS[0]
            net = _SCANNER_NETS[int(rnd() * len(_SCANNER_NETS))]
            bot = {"user_agent": ua, "ip": f"{net}{int(rnd() * 256)}.{int(rnd() * 254) + 1}"}
            for j, url in enumerate(links):
                plan.append((min(tb + j * (3 + int(rnd() * 40)), second_end), "click", b,
                             {**bot, "url": url}))

    def _open_delay(self, rng: random.Random, r: int) -> int:
        x = rng.random()
        if x < 0.8 and self._notified[r]:
            return 5000 + int(30_000 * math.exp(0.8 * rng.gauss(0.0, 1.0)))
        if x < 0.6:
            return 5000 + int(360_000 * math.exp(1.2 * rng.gauss(0.0, 1.0)))
        return 1_800_000 + int(rng.random() * 8 * _HOUR_MS)

    def _open_extra(self, rng: random.Random, r: int) -> dict[str, str]:
        ua = self._open_ua[r]
        if ua is _UA_GMAIL_PROXY:
            ip = f"{_GOOGLE_PROXY_NETS[int(rng.random() * 4)]}{int(rng.random() * 254) + 1}"
        elif ua is _UA_YAHOO_PROXY:
            ip = (f"{_YAHOO_PROXY_NETS[int(rng.random() * 2)]}{int(rng.random() * 256)}."
                  f"{int(rng.random() * 254) + 1}")
        else:
            ip = self._home_ip[r]
        return {"user_agent": ua, "ip": ip}

    def _newsletters(self, d: int) -> list:
        """Day `d`'s newsletters: sends, deliveries, machine and human opens and clicks."""
        rng = random.Random(f"{self.seed}/newsletters/{d}")  # apart from the journeys' stream
        rnd = rng.random
        hour_cum = np.cumsum(_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()).tolist()
        day0 = self.start_ms + d * DAY_MS
        plan: list = []
        for sender in self.senders:
            members = self._members[sender]
            brand = sender.split(".")[-2]
            cid = f"{brand}-newsletter-{d}"
            links = tuple(f"https://www.{brand}.example/{_PATHS[j]}?utm_source=email"
                          f"&utm_medium=email&utm_campaign={cid}&utm_content=link{j + 1}"
                          for j in range(3))
            for i, r in enumerate(rng.sample(members, round(self.newsletters * len(members)))):
                if self._invalid[r]:
                    continue  # the list was cleaned of them
                t = (day0 + min(bisect_right(hour_cum, rnd()), 23) * _HOUR_MS
                     + int(rnd() * (_HOUR_MS - 60_000)))
                td = t + 300 + int(1200 * math.exp(0.8 * rng.gauss(0.0, 1.0)))
                b = {"sender": sender, "recipient": self._address[r],
                     "message_id": f"<{t:x}.n{d:x}.{i:x}.{self._tag}@{sender}>",
                     "campaign_id": cid}
                plan.append((t, "sent", b, None))
                plan.append((td, "delivered", b, None))
                self._machines(rng, r, b, td, links, plan)
                engaged = 1.0 / (1.0 + math.exp(-self._z[r]))
                if rnd() < 0.04 + 0.4 * engaged:
                    to = td + self._open_delay(rng, r)
                    plan.append((to, "open", b, self._open_extra(rng, r)))
                    if rnd() < 0.05 + 0.3 * engaged:
                        plan.append((to + 4000 + int(20_000 * math.exp(rng.gauss(0.0, 1.0))),
                                     "click", b, {"user_agent": self._click_ua[r],
                                                  "ip": self._home_ip[r],
                                                  "url": links[int(rnd() * 3)]}))
        return plan

    # --- outputs ------------------------------------------------------------------------
    def truth(self) -> Truth:
        """Every journey that entered (bounced addresses never enter) and every cohort."""
        truth = Truth(window_days=self.window_days)
        for _, journeys in self._days():
            truth.journeys.extend(j.truth for j in journeys if j.truth is not None)
        truth.cohorts = cohorts_of(truth.journeys, self.window_days, self.shifts)
        return truth

    def events(self) -> Iterator[GeneratedEvent]:
        """Every event from `start` to `end_ms`, in event-time order (ties: planning order)."""
        heap: list = []
        push, pop = heapq.heappush, heapq.heappop
        dumps = orjson.dumps
        z_text = _TimestampText().z
        topics = TOPIC_BY_TYPE
        tag = self._tag
        seq = 0
        n = 0
        end = self.end_ms
        days = self._days()
        horizon = self.start_ms
        while True:
            nxt = next(days, None)
            if nxt is not None:
                for journey in nxt[1]:
                    for ts, etype, b, extra in journey.plan:
                        if ts < end:
                            seq += 1
                            push(heap, (ts, seq, etype, b, extra))
                if self.newsletters:
                    for ts, etype, b, extra in self._newsletters(nxt[0]):
                        seq += 1
                        push(heap, (ts, seq, etype, b, extra))
                horizon = self.start_ms + (nxt[0] + 1) * DAY_MS  # later days send after it
            else:
                horizon = end
            while heap and heap[0][0] < horizon:
                ts, _, etype, b, extra = pop(heap)
                d = {"type": etype, "ts": z_text(ts)}
                if b is not None:
                    d.update(b)
                if extra:
                    d.update(extra)
                d["event_id"] = f"{tag}-{n:010x}"
                n += 1
                yield GeneratedEvent(ts / 1000, topics[etype], d["recipient"].encode(), dumps(d))
            if nxt is None:
                return


def cohorts_of(journeys: Iterable[JourneyTruth], window_days: float = 7.0,
               shifts: Mapping[tuple[str, int], float] | None = None) -> list[CohortTruth]:
    """Per flow x cohort_day truth from journeys, sorted by (flow_id, cohort_day)."""
    acc: dict[tuple[str, int], list] = {}
    for j in journeys:
        a = acc.setdefault((j.flow_id, j.cohort_day), [0, 0.0, 0, 0.0, Counter()])
        a[0] += 1
        a[1] += j.true_p
        a[2] += j.reached
        a[3] += j.true_p * (1 - j.true_p)
        a[4][j.day] += 1
    out = []
    for (flow_id, cohort_day), (n, sp, conv, var, sim_days) in sorted(acc.items()):
        # the shift of the simulated day most of the cohort entered on (start at midnight
        # UTC: all of it)
        shift = (shifts or {}).get((flow_id, sim_days.most_common(1)[0][0]), 0.0)
        out.append(CohortTruth(flow_id, cohort_day, n, sp, sp / n, conv, conv / n,
                               math.sqrt(var) / n, shift, window_days))
    return out


def run_generate(settings: Any, to: str, seed: int, days: int, entrants_per_day: int,
                 start: str | None = None, shifts: Iterable[str] = (),
                 truth_path: str | None = None, newsletters: float = 0.0) -> int:
    """`mailflow generate --journeys`: all events to Kafka (as fast as it takes, unpaced:
    days of event time) or to a JSONL file, and the truth to `truth_path`; an exit code."""
    import sys

    from mailflow.traffic import parse_start, send_or_write

    # The truth's recipient hashes use the job's key (MAILFLOW_HASH_KEY), else the dev key.
    key = getattr(settings, "hash_key", "") or ""
    try:
        sim = JourneySimulator(seed=seed, start=parse_start(start) if start else None,
                               days=days, entrants_per_day=entrants_per_day,
                               shifts=[Shift.parse(s) for s in shifts],
                               hash_key=key.encode() if key else DEV_HASH_KEY,
                               newsletters=newsletters)
    except ValueError as exc:
        print(f"mailflow generate: {exc}", file=sys.stderr)
        return 2
    send_or_write(sim.events(), to, settings)
    if truth_path:
        truth = sim.truth()
        lines = truth.write_jsonl(truth_path)
        print(f"wrote the truth of {len(truth.journeys)} journeys and {len(truth.cohorts)} "
              f"cohorts ({lines} lines) to {truth_path}")
    return 0
