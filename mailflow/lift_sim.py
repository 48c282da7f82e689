"""Control-group experiments with a known true effect: traffic to test and benchmark lift.

Every recipient of a simulated population enters one mailflow once, on one of `days`
entry days, and is assigned once, by the simulator's own seeded draw, to an arm:

- the **global control group** (share ``g`` of everyone): no marketing at all; the sending
  system records a `holdout` event with ``group: "global"`` for each message of the flow
  they would have received;
- the flow's **control group** (share ``c`` of the rest): a `holdout` with ``group:
  "flow"`` for each message instead of sending it;
- **treated**: the flow's messages are sent (``sent``, ``delivered``), opened by people and
  by Apple's privacy proxy, clicked, unsubscribed from and complained about at the
  scenario's guardrail rates.

Assignment (in the sense of the lift contract: intent to treat) happens at the first send or
holdout of the flow; the outcome is a ``conversion`` (same sender, with ``value`` and
``currency``) within ``window_days`` after it. A recipient converts in the window with the
arm's TRUE probability: ``baseline`` in either control group, ``baseline + effect`` when
treated; the time of conversion is the assignment plus an exponential delay (mean
``delay_mean_days``) truncated to the window. Nothing else (opens, machine opens, clicks)
decides it: an engine that reads opens as outcomes finds nothing, and Apple's machine opens
come for every delivered message of an Apple Mail user, whatever the outcome.

A **broken split** (``broken_split = F``): the holdout events of a share F of a flow's
control group never reach the stream (a lost webhook, a bug in the sending system), but
those people's conversions still do, as a broken pipeline looks. The control group seen in
the stream is then short by F, and a sample-ratio test should say so.

A **policy experiment** (`PolicyExperiment`, e.g. ``send_time``) runs inside one flow's
treated recipients: a share of them gets the policy (send at the recipient's preferred
hour instead of the flow's schedule), the rest the baseline; every ``sent`` and
``delivered`` message of that flow carries ``experiment`` (the name) and ``arm``
(``"treated"`` | ``"control"``). The policy's true effect ``e`` is split so that the flow's
treated rate stays ``baseline + effect``: the policy arm converts at ``+ (1 - s) * e``, the
baseline arm at ``- s * e`` (``s`` the policy share), a difference of exactly ``e``.

Noise the engine must ignore: conversions of people who never entered any flow
(``background_per_day``), conversions in the days before a recipient's assignment
(``early_rate``) and after their window closed (``late_rate``), the same in all arms: no
bias, only a test that outcomes count inside the window and nowhere else.

`LiftSimulator.truth()` gives, per flow, for the global control group (unit ``""``) and for
the experiment (unit ``"experiment:<name>"``), the true absolute effect, the expected sample
sizes, and the realised counts of the generated data (recipients assigned per arm,
converters per arm within the window, as assigned and as the stream shows them).

>>> sim = LiftSimulator(default_scenario(days=2, recipients_per_day=60), seed=3,
...                     start=START)
>>> events = list(sim.events())
>>> all(a.ts <= b.ts for a, b in zip(events, events[1:]))
True
>>> events == list(LiftSimulator(sim.scenario, seed=3, start=START).events())
True
>>> {"email.holdouts", "email.deliveries", "email.conversions"} <= {e.topic for e in events}
True
>>> {u.unit: u.true_effect for u in sim.truth().units}
{'onboarding': 0.02, 'winback': 0.0, '': 0.01, 'experiment:send_time': 0.01}
"""

from __future__ import annotations

import math
import random
import sys
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from itertools import accumulate
from typing import Any

import orjson

from mailflow.generator import (
    _APPLE_PROXY_NETS,
    _APPLE_PROXY_UA,
    _DOMAINS,
    _UA_ANDROID,
    _UA_CHROME,
    _UA_IPHONE_MAIL,
    _UA_OUTLOOK,
    GeneratedEvent,
    _TimestampText,
)
from schemas.topics import TOPIC_BY_TYPE

__all__ = ["HOLDOUT_TOPIC", "START", "FlowScenario", "GlobalControl", "LiftScenario",
           "LiftSimulator", "LiftTruth", "PolicyExperiment", "UnitTruth", "default_scenario",
           "run_generate", "scenario_from_args", "topic_for"]

DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
#: 2026-11-01T00:00:00Z: a fixed default start for reproducible benches and tests.
START = 1_793_491_200.0

#: Where `holdout` events go until `schemas.topics` names it (DESIGN.md: `email.holdouts`).
HOLDOUT_TOPIC = "email.holdouts"


def topic_for(event_type: str) -> str:
    """The input topic of an event type; `holdout` goes to ``email.holdouts``.

    >>> topic_for("holdout"), topic_for("sent"), topic_for("conversion")
    ('email.holdouts', 'email.deliveries', 'email.conversions')
    """
    topic = TOPIC_BY_TYPE.get(event_type)
    if topic is None and event_type == "holdout":
        return HOLDOUT_TOPIC
    if topic is None:
        raise KeyError(f"no topic for event type {event_type!r}")
    return topic


def _share(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within 0..1, got {value!r}")


# --- the scenario ----------------------------------------------------------------------
@dataclass(frozen=True)
class FlowScenario:
    """One mailflow under a control-group experiment (probabilities, not percentages)."""

    flow_id: str
    sender: str
    recipients_per_day: int = 500
    #: day offsets of the journey's messages after entering (step 0 is the assignment)
    steps_days: tuple[float, ...] = (0.0, 2.0, 4.0)
    control_share: float = 0.10
    #: P(conversion within the window) without the flow (the control arm)
    baseline: float = 0.05
    #: true absolute effect: treated minus control conversion probability
    effect: float = 0.0
    #: order value: lognormal with this mean and log-scale sigma
    value_mean: float = 60.0
    value_sigma: float = 0.8
    #: conversion delay after assignment: exponential with this mean, truncated at the window
    delay_mean_days: float = 2.0
    #: guardrails, per delivered message of treated recipients (then nothing more is sent)
    unsubscribe_rate: float = 0.003
    complaint_rate: float = 0.0005
    #: human opens and human clicks per delivered message
    open_rate: float = 0.25
    click_rate: float = 0.04
    #: share of the control group whose holdout events never reach the stream
    broken_split: float = 0.0
    campaign_id: str = ""

    def __post_init__(self) -> None:
        if not self.flow_id or not self.sender:
            raise ValueError("a flow needs a flow_id and a sender")
        if self.recipients_per_day < 0:
            raise ValueError("recipients_per_day must not be negative")
        if not self.steps_days or self.steps_days[0] != 0.0 or any(
                b <= a for a, b in zip(self.steps_days, self.steps_days[1:], strict=False)):
            raise ValueError("steps_days must start at 0 and increase")
        for name in ("control_share", "baseline", "unsubscribe_rate", "complaint_rate",
                     "open_rate", "click_rate", "broken_split"):
            _share(name, getattr(self, name))
        _share("baseline + effect", self.baseline + self.effect)
        if self.click_rate > self.open_rate:
            raise ValueError("click_rate must not exceed open_rate (clicks follow opens)")
        if self.value_mean <= 0 or self.value_sigma < 0 or self.delay_mean_days <= 0:
            raise ValueError("value_mean and delay_mean_days must be positive")

    @property
    def campaign(self) -> str:
        return self.campaign_id or f"{self.flow_id}-journey"


@dataclass(frozen=True)
class GlobalControl:
    """The global control group: ``share`` of all recipients gets no marketing at all."""

    share: float = 0.05
    #: share of the global control group whose holdout events never reach the stream
    broken_split: float = 0.0

    def __post_init__(self) -> None:
        _share("global control share", self.share)
        _share("global broken_split", self.broken_split)


@dataclass(frozen=True)
class PolicyExperiment:
    """A policy (``send_time``: send at the recipient's preferred hour) applied to
    ``treated_share`` of one flow's treated recipients, the flow's schedule to the rest."""

    name: str = "send_time"
    flow_id: str = "onboarding"
    treated_share: float = 0.5
    #: true absolute effect on conversion: policy arm minus baseline arm
    effect: float = 0.01

    def __post_init__(self) -> None:
        _share("experiment treated_share", self.treated_share)

    @property
    def unit(self) -> str:
        return f"experiment:{self.name}"


@dataclass(frozen=True)
class LiftScenario:
    """Flows, the global control group, an optional policy experiment, and noise."""

    flows: tuple[FlowScenario, ...]
    days: int = 14
    window_days: float = 7.0
    global_control: GlobalControl = field(default_factory=GlobalControl)
    experiment: PolicyExperiment | None = field(default_factory=PolicyExperiment)
    #: conversions per day by people who never enter any flow (outside every experiment)
    background_per_day: int = 10
    #: share of assigned recipients (every arm alike) converting after their window closed
    late_rate: float = 0.02
    #: share of assigned recipients (every arm alike) converting in the 3 days before it
    early_rate: float = 0.02
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if self.days < 1 or self.window_days <= 0:
            raise ValueError("days must be >= 1 and window_days positive")
        ids = [f.flow_id for f in self.flows]
        if not ids or len(set(ids)) != len(ids):
            raise ValueError("flows need distinct flow ids")
        _share("late_rate", self.late_rate)
        _share("early_rate", self.early_rate)
        if self.background_per_day < 0:
            raise ValueError("background_per_day must not be negative")
        exp = self.experiment
        if exp is not None:
            flow = self.flow(exp.flow_id)
            s, e = exp.treated_share, exp.effect
            _share("policy arm probability", flow.baseline + flow.effect + (1 - s) * e)
            _share("baseline arm probability", flow.baseline + flow.effect - s * e)
        window = self.window_days * DAY_MS
        for f in self.flows:
            if f.steps_days[-1] * DAY_MS >= window:
                raise ValueError(f"flow {f.flow_id}: every step must fall inside the window")

    def flow(self, flow_id: str) -> FlowScenario:
        for f in self.flows:
            if f.flow_id == flow_id:
                return f
        raise ValueError(f"no flow {flow_id!r} in the scenario")

    @property
    def span_days(self) -> float:
        """Entry days, the send-time shift (< 1 day), the window and the late tail: the
        data's last event (an outsider's conversion) comes at its end."""
        return self.days + 1 + self.window_days + _LATE_DAYS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Late conversions come up to this many days after the window closed, early ones up to
#: this many before the assignment.
_LATE_DAYS = 5.0
_EARLY_DAYS = 3.0


def default_scenario(days: int = 14, recipients_per_day: int = 300, effect: float = 0.02,
                     holdout_share: float = 0.10, global_share: float = 0.05,
                     broken_split: float = 0.0, experiment_effect: float = 0.01
                     ) -> LiftScenario:
    """``onboarding``: +2 pp on a 5% baseline; ``winback``: no effect on 4%; 10% per-flow
    holdouts, a 5% global control group, ``send_time`` at 50/50 with +1 pp in onboarding.

    >>> s = default_scenario()
    >>> [(f.flow_id, f.baseline, f.effect, f.control_share) for f in s.flows]
    [('onboarding', 0.05, 0.02, 0.1), ('winback', 0.04, 0.0, 0.1)]
    """
    return LiftScenario(
        flows=(
            FlowScenario("onboarding", "notify.saas.example", recipients_per_day,
                         steps_days=(0.0, 1.0, 3.0), control_share=holdout_share,
                         baseline=0.05, effect=effect, value_mean=45.0,
                         broken_split=broken_split),
            FlowScenario("winback", "mail.shop.example", recipients_per_day,
                         steps_days=(0.0, 3.0, 6.0), control_share=holdout_share,
                         baseline=0.04, effect=0.0, value_mean=80.0,
                         broken_split=broken_split),
        ),
        days=days,
        global_control=GlobalControl(global_share),
        experiment=PolicyExperiment("send_time", "onboarding", 0.5, experiment_effect),
    )


# --- the truth -------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitTruth:
    """The truth of one comparison (a flow, ``""`` = global, ``experiment:<name>``).

    ``control_*`` count the control group as assigned; ``observed_control_*`` only those
    whose holdout events reach the stream (a broken split loses the rest): the engine can
    only see the observed ones. Converters are counted within the window after each
    recipient's assignment.

    Two readings a job may take are both given: for a flow, ``global_control_*`` are the
    global control group's members who would have entered it (their holdouts say ``group:
    "global"``; observed ones), in neither of the flow's arms here but possibly counted in
    its control arm; for the global unit, ``flow_control_*`` are the flows' control groups
    (observed ones), in neither arm here (they got no marketing from their flow, but are
    not in the global control group) but possibly counted as treated.
    """

    unit: str
    kind: str  # flow | global | experiment
    true_effect: float
    true_control_rate: float
    true_treated_rate: float
    #: configured share of the control arm among the two arms (what an SRM test expects)
    control_share: float
    expected_treated_n: float
    expected_control_n: float
    treated_n: int
    treated_conv: int
    treated_value: float
    control_n: int
    control_conv: int
    control_value: float
    observed_control_n: int
    observed_control_conv: int
    observed_control_value: float
    global_control_n: int = 0
    global_control_conv: int = 0
    flow_control_n: int = 0
    flow_control_conv: int = 0
    #: global only: the true effect when the flows' control groups count as treated
    #: (everyone outside the global control group, whether mailed or not)
    itt_true_effect: float | None = None
    #: treated recipients who unsubscribed / complained, and their delivered messages
    treated_unsubscribed: int = 0
    treated_complained: int = 0
    treated_delivered: int = 0

    @property
    def treated_rate(self) -> float:
        return self.treated_conv / self.treated_n if self.treated_n else math.nan

    @property
    def control_rate(self) -> float:
        return self.control_conv / self.control_n if self.control_n else math.nan

    @property
    def realised_effect(self) -> float:
        """The difference of the realised rates (assigned arms)."""
        return self.treated_rate - self.control_rate

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"treated_rate": _r(self.treated_rate),
                               "control_rate": _r(self.control_rate)}


@dataclass
class LiftTruth:
    """Per unit truth, the scenario, the seed and the counts of generated events by type."""

    seed: int
    scenario: LiftScenario
    units: list[UnitTruth]
    events_by_type: dict[str, int]

    def unit(self, name: str) -> UnitTruth:
        for u in self.units:
            if u.unit == name:
                return u
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "window_days": self.scenario.window_days,
                "events": sum(self.events_by_type.values()),
                "events_by_type": dict(sorted(self.events_by_type.items())),
                "units": [u.as_dict() for u in self.units],
                "scenario": self.scenario.to_dict()}


def _r(x: float) -> float:
    return round(x, 6) if math.isfinite(x) else x


# --- the simulation --------------------------------------------------------------------
@dataclass
class _Person:
    """One recipient's assignment and outcome (what the truth counts)."""

    flow: FlowScenario
    n: int  # the person's number: their message ids say it, never their address
    address: str
    arm: str  # treated | flow | global
    lost: bool  # a control member whose holdouts never reach the stream
    exp_arm: str  # treated | control | "" (not in the experiment)
    assigned_ms: int = 0
    converted: bool = False
    value: float = 0.0
    unsubscribed: bool = False
    complained: bool = False
    stopped_ms: int | None = None  # when they unsubscribed or complained
    delivered: int = 0


_DOMAIN_NAMES = tuple(d for d, *_ in _DOMAINS)
_DOMAIN_CUM = tuple(accumulate(share for _, share, _, _ in _DOMAINS))
_APPLE_SHARE = {d: apple for d, _, _, apple in _DOMAINS}
_HUMAN_UAS = (_UA_IPHONE_MAIL, _UA_OUTLOOK, _UA_CHROME, _UA_ANDROID)
_FIRST = ("ann", "ben", "cleo", "dan", "eva", "finn", "gia", "hugo", "ida", "jon", "kim",
          "lea", "max", "nia", "otto", "pia", "raj", "sara", "tom", "uma", "vic", "wes", "yara")
#: Entry hours (UTC) of a journey: mostly daytime.
_ENTRY_HOURS = tuple(range(6, 23))


class LiftSimulator:
    """Seeded events and truth of a `LiftScenario` from ``start`` (epoch seconds, at a UTC
    midnight or not). Same scenario, seed and start: the same bytes and the same truth.

    Separate random streams decide assignment, lost holdouts, outcomes and behaviour, so
    that changing ``broken_split`` changes nothing but which holdouts are lost, and
    changing a guardrail rate leaves the arms and the conversions alone.
    """

    def __init__(self, scenario: LiftScenario | None = None, seed: int = 1,
                 start: float | None = None):
        self.scenario = scenario or default_scenario()
        self.seed = seed
        if start is None:  # whole UTC days, ending before now
            span = self.scenario.span_days * DAY_MS
            start = (int(time.time() * 1000 - span) // DAY_MS - 1) * DAY_MS / 1000
        self.start_ms = int(round(start * 1000))
        self._tag = f"lift{seed}"

    def _rng(self, stream: str) -> random.Random:
        return random.Random(f"mailflow.lift_sim:{self.seed}:{stream}")

    @cached_property
    def _plan(self) -> tuple[list[_Person], list[tuple[int, int, str, dict]]]:
        """Every person and every event, as (ts_ms, seq, type, fields), sorted."""
        sc = self.scenario
        assign, lose, outcome, behave = (self._rng(s) for s in
                                         ("assign", "lose", "outcome", "behave"))
        window = int(sc.window_days * DAY_MS)
        people: list[_Person] = []
        events: list[tuple[int, int, str, dict]] = []
        seq = 0

        def emit(ts: int, etype: str, fields: dict) -> None:
            nonlocal seq
            seq += 1
            events.append((ts, seq, etype, fields))

        exp = sc.experiment
        n = 0
        for day in range(sc.days):
            for flow in sc.flows:
                for _ in range(flow.recipients_per_day):
                    n += 1
                    address = self._address(n, assign)
                    entered = (self.start_ms + day * DAY_MS
                               + assign.choice(_ENTRY_HOURS) * _HOUR_MS
                               + assign.randrange(_HOUR_MS))
                    # the policy's send time: the person's hour (plus under a minute)
                    preferred_ms = assign.randrange(6, 22) * _HOUR_MS + assign.randrange(60_000)
                    if assign.random() < sc.global_control.share:
                        arm = "global"
                    elif assign.random() < flow.control_share:
                        arm = "flow"
                    else:
                        arm = "treated"
                    exp_arm = ""
                    if arm == "treated" and exp is not None and exp.flow_id == flow.flow_id:
                        exp_arm = "treated" if assign.random() < exp.treated_share else "control"
                    u_lost = lose.random()  # drawn for everyone: the same people lose alike
                    lost = (arm == "flow" and u_lost < flow.broken_split) or (
                        arm == "global" and u_lost < sc.global_control.broken_split)
                    p = _Person(flow, n, address, arm, lost, exp_arm)
                    people.append(p)
                    self._journey(p, entered, preferred_ms, behave, emit)
                    self._outcome(p, window, outcome, emit)
        end = self.start_ms + int(sc.span_days * DAY_MS)
        for day in range(math.ceil(sc.span_days)):
            for _ in range(sc.background_per_day):
                n += 1
                flow = sc.flows[outcome.randrange(len(sc.flows))]
                ts = self.start_ms + day * DAY_MS + outcome.randrange(DAY_MS)
                if ts < end:
                    emit(ts, "conversion", self._conversion(flow, self._address(n, assign),
                                                            outcome))
        # The data ends after every window closed, whatever the draws: a job that counts
        # only closed windows (as it should) sees every assigned recipient.
        n += 1
        emit(end - 1, "conversion", self._conversion(sc.flows[0], self._address(n, assign),
                                                     outcome))
        events.sort(key=lambda e: (e[0], e[1]))
        return people, events

    @staticmethod
    def _address(n: int, rng: random.Random) -> str:
        """A unique, lower-case address: ``<name>.<n>@<domain>`` (one spelling per person)."""
        domain = _DOMAIN_NAMES[min(len(_DOMAIN_NAMES) - 1,
                                   bisect_right(_DOMAIN_CUM, rng.random() * _DOMAIN_CUM[-1]))]
        return f"{rng.choice(_FIRST)}.{n}@{domain}"

    def _journey(self, p: _Person, entered: int, preferred_ms: int, rng: random.Random,
                 emit: Any) -> None:
        """The flow's messages: holdouts for the control groups, mail for the treated."""
        flow, exp = p.flow, self.scenario.experiment
        apple = rng.random() < _APPLE_SHARE[p.address.rsplit("@", 1)[1]]
        base = {"sender": flow.sender, "recipient": p.address}
        for k, offset in enumerate(flow.steps_days):
            ts = entered + int(offset * DAY_MS)
            if p.exp_arm == "treated":  # the policy: the next preferred send time
                at = ts - ts % DAY_MS + preferred_ms
                ts = at if at >= ts else at + DAY_MS
            if k == 0:
                p.assigned_ms = ts
            message = {**base, "message_id": f"<{flow.flow_id}.{k}.r{p.n}@{flow.sender}>",
                       "campaign_id": flow.campaign, "flow_id": flow.flow_id}
            if p.arm != "treated":
                if not p.lost:
                    emit(ts, "holdout", {**message, "group": p.arm})
                continue
            if p.stopped_ms is not None and p.stopped_ms < ts:
                continue  # the sender stops mailing them
            tagged = message if not p.exp_arm else {
                **message, "experiment": exp.name, "arm": p.exp_arm}  # type: ignore[union-attr]
            emit(ts, "sent", tagged)
            delivered = ts + 500 + rng.randrange(20_000)
            emit(delivered, "delivered", tagged)
            p.delivered += 1
            if apple:  # Apple's privacy proxy opens every message, whatever the person does
                emit(delivered + 2_000 + rng.randrange(60_000), "open",
                     {**message, "user_agent": _APPLE_PROXY_UA,
                      "ip": f"{rng.choice(_APPLE_PROXY_NETS)}{rng.randrange(256)}."
                            f"{rng.randrange(1, 255)}"})
            if rng.random() < flow.open_rate:
                opened = delivered + int(rng.expovariate(1 / (3 * _HOUR_MS))) + 60_000
                ua = rng.choice(_HUMAN_UAS)
                emit(opened, "open", {**message, "user_agent": ua})
                if rng.random() < flow.click_rate / flow.open_rate:
                    emit(opened + 5_000 + rng.randrange(120_000), "click",
                         {**message, "user_agent": ua,
                          "url": f"https://{flow.sender}/{flow.flow_id}/{k}"})
            u = rng.random()
            if p.stopped_ms is None and u < flow.complaint_rate + flow.unsubscribe_rate:
                # minutes to hours after delivery; a later step already under way still goes
                p.stopped_ms = delivered + rng.randrange(60_000, 12 * _HOUR_MS)
                if u < flow.complaint_rate:
                    p.complained = True
                    emit(p.stopped_ms, "complaint", message)
                else:
                    p.unsubscribed = True
                    emit(p.stopped_ms, "unsubscribe", message)

    def _probability(self, p: _Person) -> float:
        flow, exp = p.flow, self.scenario.experiment
        if p.arm != "treated":
            return flow.baseline
        prob = flow.baseline + flow.effect
        if p.exp_arm and exp is not None:
            s = exp.treated_share
            prob += (1 - s) * exp.effect if p.exp_arm == "treated" else -s * exp.effect
        return prob

    def _outcome(self, p: _Person, window: int, rng: random.Random, emit: Any) -> None:
        """A conversion within the window at the arm's probability, and a late one."""
        u_conv, u_delay, u_late, u_late_at, u_early, u_early_at = (rng.random()
                                                                    for _ in range(6))
        conversion = self._conversion(p.flow, p.address, rng)  # drawn for all alike
        if u_conv < self._probability(p):
            mean = p.flow.delay_mean_days * DAY_MS
            delay = -mean * math.log1p(-u_delay * -math.expm1(-window / mean))
            delay = min(max(int(delay), 1), window - 1)
            p.converted, p.value = True, conversion["value"]
            emit(p.assigned_ms + delay, "conversion", conversion)
        if u_late < self.scenario.late_rate:
            emit(p.assigned_ms + window + 1 + int(u_late_at * _LATE_DAYS * DAY_MS),
                 "conversion", {**conversion, "value": round(conversion["value"] * 0.5, 2)})
        early = p.assigned_ms - _HOUR_MS - int(u_early_at * _EARLY_DAYS * DAY_MS)
        if u_early < self.scenario.early_rate and early >= self.start_ms:
            emit(early, "conversion", {**conversion, "value": round(conversion["value"] * 0.7,
                                                                     2)})

    def _conversion(self, flow: FlowScenario, address: str, rng: random.Random) -> dict:
        sigma = flow.value_sigma
        mu = math.log(flow.value_mean) - sigma * sigma / 2  # E[lognormal] = value_mean
        return {"sender": flow.sender, "recipient": address, "goal": "purchase",
                "value": round(rng.lognormvariate(mu, sigma), 2),
                "currency": self.scenario.currency}

    # --- outputs ---------------------------------------------------------------------
    def events(self) -> Iterator[GeneratedEvent]:
        """Every event in event-time order (ties: planning order), wire format v1."""
        dumps = orjson.dumps
        z_text = _TimestampText().z
        tag = self._tag
        for n, (ts, _, etype, fields) in enumerate(self._plan[1]):
            d = {"type": etype, "ts": z_text(ts), **fields, "event_id": f"{tag}-{n:08x}"}
            yield GeneratedEvent(ts / 1000, topic_for(etype), fields["recipient"].encode(),
                                 dumps(d))

    def truth(self) -> LiftTruth:
        """Per flow, global and experiment: the true effect, expected and realised sizes."""
        sc = self.scenario
        people = self._plan[0]
        g = sc.global_control.share
        units = [self._unit(f.flow_id, "flow", f.effect, f.baseline, f.control_share,
                            [p for p in people if p.flow is f and p.arm == "treated"],
                            [p for p in people if p.flow is f and p.arm == "flow"],
                            (1 - g) * (1 - f.control_share) * self._entrants(f),
                            (1 - g) * f.control_share * self._entrants(f),
                            [p for p in people if p.flow is f and p.arm == "global"])
                 for f in sc.flows]
        # Global: the mailed (treated in any flow) against the global control group, with
        # each flow's weight as expected in either arm.
        w_t = {f.flow_id: (1 - g) * (1 - f.control_share) * self._entrants(f)
               for f in sc.flows}
        w_c = {f.flow_id: g * self._entrants(f) for f in sc.flows}
        rate_t = sum(w_t[f.flow_id] * (f.baseline + f.effect) for f in sc.flows) / max(
            sum(w_t.values()), 1e-12)
        rate_c = sum(w_c[f.flow_id] * f.baseline for f in sc.flows) / max(sum(w_c.values()),
                                                                          1e-12)
        mailed = sum(w_t.values())
        held = sum(w_c.values())
        w_all = {f.flow_id: (1 - g) * self._entrants(f) for f in sc.flows}
        rate_all = sum(w_all[f.flow_id] * (f.baseline + (1 - f.control_share) * f.effect)
                       for f in sc.flows) / max(sum(w_all.values()), 1e-12)
        units.append(replace(
            self._unit("", "global", rate_t - rate_c, rate_c,
                       held / (held + mailed) if held + mailed else 0.0,
                       [p for p in people if p.arm == "treated"],
                       [p for p in people if p.arm == "global"], mailed, held,
                       flow_control=[p for p in people if p.arm == "flow"]),
            itt_true_effect=_r(rate_all - rate_c)))
        exp = sc.experiment
        if exp is not None:
            f = sc.flow(exp.flow_id)
            base = f.baseline + f.effect - exp.treated_share * exp.effect
            inside = (1 - g) * (1 - f.control_share) * self._entrants(f)
            units.append(self._unit(exp.unit, "experiment", exp.effect, base,
                                    1 - exp.treated_share,
                                    [p for p in people if p.exp_arm == "treated"],
                                    [p for p in people if p.exp_arm == "control"],
                                    inside * exp.treated_share,
                                    inside * (1 - exp.treated_share)))
        return LiftTruth(self.seed, sc, units, dict(Counter(e[2] for e in self._plan[1])))

    def _entrants(self, f: FlowScenario) -> int:
        return f.recipients_per_day * self.scenario.days

    @staticmethod
    def _unit(unit: str, kind: str, effect: float, control_rate: float, control_share: float,
              treated: list[_Person], control: list[_Person], exp_t: float, exp_c: float,
              global_control: Iterable[_Person] = (), flow_control: Iterable[_Person] = ()
              ) -> UnitTruth:
        seen = [p for p in control if not p.lost]
        other_g = [p for p in global_control if not p.lost]
        other_f = [p for p in flow_control if not p.lost]
        return UnitTruth(
            unit, kind, _r(effect), _r(control_rate), _r(control_rate + effect),
            _r(control_share), _r(exp_t), _r(exp_c),
            treated_n=len(treated), treated_conv=sum(p.converted for p in treated),
            treated_value=round(sum(p.value for p in treated), 2),
            control_n=len(control), control_conv=sum(p.converted for p in control),
            control_value=round(sum(p.value for p in control), 2),
            observed_control_n=len(seen), observed_control_conv=sum(p.converted for p in seen),
            observed_control_value=round(sum(p.value for p in seen), 2),
            global_control_n=len(other_g),
            global_control_conv=sum(p.converted for p in other_g),
            flow_control_n=len(other_f), flow_control_conv=sum(p.converted for p in other_f),
            treated_unsubscribed=sum(p.unsubscribed for p in treated),
            treated_complained=sum(p.complained for p in treated),
            treated_delivered=sum(p.delivered for p in treated))


def scenario_from_args(days: int | None = None, recipients_per_day: int | None = None,
                       effect_pp: float | None = None, holdout_share: float | None = None,
                       broken_split: float | None = None,
                       global_share: float | None = None) -> LiftScenario:
    """The default scenario with the CLI's overrides (``effect_pp`` in percentage points)."""
    kw: dict[str, Any] = {}
    if days is not None:
        kw["days"] = days
    if recipients_per_day is not None:
        kw["recipients_per_day"] = recipients_per_day
    if effect_pp is not None:
        kw["effect"] = effect_pp / 100
    if holdout_share is not None:
        kw["holdout_share"] = holdout_share
    if broken_split is not None:
        kw["broken_split"] = broken_split
    if global_share is not None:
        kw["global_share"] = global_share
    return default_scenario(**kw)


def summary_lines(truth: LiftTruth) -> Iterable[str]:
    """A human-readable table of the truth (the CLI prints it to stderr)."""
    yield (f"{sum(truth.events_by_type.values()):,} events: "
           + ", ".join(f"{k} {v:,}" for k, v in sorted(truth.events_by_type.items())))
    yield (f"{'unit':22} {'effect':>7} {'treated':>8} {'conv':>5} {'rate':>6} "
           f"{'control':>8} {'conv':>5} {'rate':>6} {'seen':>6}")
    for u in truth.units:
        yield (f"{u.unit or '(global)':22} {u.true_effect * 100:>+6.2f}p {u.treated_n:>8} "
               f"{u.treated_conv:>5} {u.treated_rate:>6.3f} {u.control_n:>8} "
               f"{u.control_conv:>5} {u.control_rate:>6.3f} {u.observed_control_n:>6}")


def run_generate(settings: Any, to: str, seed: int, start: str | None,
                 scenario: LiftScenario, truth_path: str | None = None) -> int:
    """`mailflow generate --scenario lift`: to Kafka (unpaced) or a JSONL file; an exit
    code. The truth goes to `truth_path` (JSON) and a summary to stderr."""
    from mailflow.traffic import parse_start, send_or_write

    try:
        sim = LiftSimulator(scenario, seed=seed, start=parse_start(start) if start else None)
    except ValueError as exc:
        print(f"mailflow generate: {exc}", file=sys.stderr)
        return 2
    send_or_write(sim.events(), to, settings)
    truth = sim.truth()
    for line in summary_lines(truth):
        print(line, file=sys.stderr)
    if truth_path:
        with open(truth_path, "wb") as out:
            out.write(orjson.dumps(truth.as_dict(), option=orjson.OPT_INDENT_2))
        print(f"wrote the truth to {truth_path}")
    return 0


