"""Convergence propensity: P(a recipient reaches a flow's goal within its window), re-scored
at every event of their journey, learnt online from how journeys move.

This runs in the models' step, fed the shards' `JourneyFact`s (operators/journeys.py)
in one event-time order, beside the per-message models (operators/learning.py):

- **Scored** at entering the flow and again at every fact of the open journey (another
  step, a human open, click or reply, a bounce, a conversion elsewhere, and every
  `RESCORE` hours without one), as the chance of reaching the goal before the window
  closes from where the journey is now: its *state* (nothing human yet, opened, clicked
  or replied, cooled: the last human touch is more than `COOL_HOURS` old, bounced) and
  how far into the window it is. The chances come from a multi-state model of the flow's
  journeys, counted as they move (operators/hazards.py `HazardBook`): every move between
  states, every goal and stop, and the person-time spent in each state per slice of the
  window give the rates, and the chance follows from them exactly.
- **Closed** by the goal (the score goes to 1), an unsubscribe or complaint (0) or the
  window passing (0).
- **Learnt** without waiting for outcomes and without their bias. Outcomes arrive up to a
  window (7 days) late, and early goals before late misses: an outcome model learns a
  biased rate while it waits. Measured on `bench/convergence.py --engine` (10 days, 500
  entrants per flow and day): a River logistic regression on the journey's and the
  recipient's features, learnt with fake negatives (Ktena et al. 2019), had an entry
  calibration error (ECE) of 0.11 and a forecast error a day in of 26%; counting moves
  and person-time, which are complete an hour after they happen, gives 0.04 and 24%, and
  the cooled state alone took it from 0.09 to 0.04 (clicks that did not convert soon
  rarely convert later). Adding the regression's recipient features on top of the counts
  (its log-odds against its mean per state) broke the calibration (ECE 0.13): the
  recipients' own history does not enter the score yet.
- **Graded** prequentially when the journey closes (`Graded`, for `model_metrics`): the
  entry score (`convergence`), the latest score before the end (`convergence_latest`),
  and two baselines measured the same way: the flow's running convergence at entry
  (`convergence_baseline_flow`) and the per-message conversion model's score of the entry
  delivery alone (`convergence_baseline_conversion`).

Rows: every change of a score (`PropensityRow`, the latest per flow × recipient is the
table `flow_propensities`); `publish` marks the ones that moved by at least `step` since
the last published one (and entries and ends), for the topic `mailflow.flow_propensities`.
A recipient whose propensity fell below `stop_below` while the unsubscribe risk of the
flow's mail rose is flagged `advice="stop_mailing"` (advice, never an action).

>>> from operators.journeys import JourneyFact
>>> book = PropensityBook()
>>> fact = JourneyFact(0, "welcome", "r1", "s", "gmail.com", 0, "enter", 7, (0.0,) * 8,
...                    (0.0,) * 7)
>>> rows, graded, moves = book.observe(fact, (0.1, 0.02, 0.001))
>>> rows[0].score, moves[0].old is None, graded    # nothing counted yet: 0
(0.0, True, [])
>>> rows, graded, moves = book.observe(fact._replace(ts_ms=9, kind="goal"), None)
>>> rows[0].score, [g.model for g in graded][:2], moves[0].new
(1.0, ['convergence', 'convergence_latest'], 1.0)
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple

from operators import hazards
from operators.hazards import HazardBook
from operators.journeys import FINAL, GOAL
from operators.learning import Graded

# journey record fields
(_COHORT, _P_ENTRY, _P_LAST, _UNSUB_ENTRY, _UNSUB_LAST, _PUBLISHED,
 _CONV_ENTRY, _FLOW_RATE, _SCORES, _ENTERED, _STATE) = range(11)
#: Scores are capped below 1 until the goal is reached.
_P_MAX = 0.999
_MODEL = "convergence"


class PropensityRow(NamedTuple):
    flow_id: str
    recipient_hash: str
    score: float  # P(reaching the flow's goal within its window), as of as_of_ms
    as_of_ms: int
    kind: str  # what re-scored it (operators/journeys.py KINDS)
    cohort_day: int
    unsubscribe_risk: float  # of the flow's latest delivery (per-message model)
    advice: str  # "stop_mailing" or ""
    publish: bool  # moved by at least `step` since the last published score (or entry/end)


class Move(NamedTuple):
    """A recipient's propensity changed: what the cohort forecast needs."""

    flow_id: str
    cohort_day: int
    recipient_hash: str
    old: float | None  # None: entered now
    new: float
    kind: str  # a final kind (goal, stopped, expired) closes the journey; "erased" too


class PropensityBook:
    """Open journeys, their states and scores; the counts behind the scores."""

    def __init__(self, step: float = 0.05, stop_below: float = 0.05,
                 unsub_rise: float = 1.25):
        self.step, self.stop_below, self.unsub_rise = step, stop_below, unsub_rise
        self.hazards = HazardBook()
        self.open: dict[str, dict[str, list]] = {}  # recipient -> flow -> record
        self.flows: dict[str, list[int]] = {}  # flow -> [closed journeys, reached]
        self.learned = 0

    def configure(self, step: float, stop_below: float, window_s: int | None = None) -> None:
        self.step, self.stop_below = step, stop_below
        if window_s:
            self.hazards.set_window(window_s)

    def advance(self, ts_ms: int) -> None:
        """Event time reached `ts_ms`: the person-time of the open journeys is counted."""
        self.hazards.advance(ts_ms)

    def open_journeys(self) -> int:
        return sum(len(flows) for flows in self.open.values())

    def flow_rate(self, flow_id: str) -> float:
        """The flow's running convergence: share of closed journeys that reached the goal
        (shrunk towards 5% while few have closed)."""
        closed, reached = self.flows.get(flow_id, (0, 0))
        return (reached + 0.5) / (closed + 10.0)

    def observe(self, fact, scores: tuple[float, float, float] | None
                ) -> tuple[list[PropensityRow], list[Graded], list[Move]]:
        """One `JourneyFact`, with the per-message scores of the flow's latest delivery if
        still known (engagement, conversion, unsubscribe risk); rows, graded labels, moves."""
        flow, recipient, kind = fact.flow_id, fact.recipient_hash, fact.kind
        journeys = self.open.get(recipient)
        record = journeys.get(flow) if journeys else None
        if kind in FINAL:
            if record is None:
                return [], [], []
            return self._close(fact, record)
        if record is None:
            if kind != "enter":
                return [], [], []  # the journey's entry is unknown here (erased): skip
            rate = self.flow_rate(flow)
            scores = scores or (0.0, 0.0, 0.0)
            self.hazards.enter(flow, fact.ts_ms)
            p = self._score(flow, hazards.QUIET, 0)
            record = [fact.cohort_day, p, p, scores[2], scores[2], p, scores[1], rate,
                      scores, fact.ts_ms, hazards.QUIET]
            self.open.setdefault(recipient, {})[flow] = record
            row = self._row(fact, record, p, publish=True)
            return [row], [], [Move(flow, fact.cohort_day, recipient, None, p, kind)]
        if scores is None:
            scores = record[_SCORES]
        else:
            record[_SCORES] = scores
        old = record[_P_LAST]
        state = _state_of(fact.journey)
        if state != record[_STATE]:
            self.hazards.move(flow, record[_ENTERED], fact.ts_ms, record[_STATE], state)
            record[_STATE] = state
        p = self._score(flow, state, fact.ts_ms - record[_ENTERED])
        record[_P_LAST], record[_UNSUB_LAST] = p, scores[2]
        publish = abs(p - record[_PUBLISHED]) >= self.step
        if publish:
            record[_PUBLISHED] = p
        return ([self._row(fact, record, p, publish)], [],
                [Move(flow, record[_COHORT], recipient, old, p, kind)])

    def forget(self, recipient: str, ts_ms: int) -> list[Move]:
        """Erasure: the recipient's open journeys leave (their scores are dropped; the
        counts and the flows' running rates keep what they learnt)."""
        journeys = self.open.pop(recipient, {})
        for flow, r in journeys.items():
            self.hazards.leave(flow, r[_ENTERED], ts_ms, r[_STATE])
        return [Move(flow, r[_COHORT], recipient, r[_P_LAST], 0.0, "erased")
                for flow, r in journeys.items()]

    # -- internals ---------------------------------------------------------------
    def _close(self, fact, record: list) -> tuple[list[PropensityRow], list[Graded], list[Move]]:
        flow, recipient = fact.flow_id, fact.recipient_hash
        journeys = self.open[recipient]
        del journeys[flow]
        if not journeys:
            del self.open[recipient]
        y = fact.kind == GOAL
        ts = fact.ts_ms
        if y:
            self.hazards.move(flow, record[_ENTERED], ts, record[_STATE], hazards.GOAL)
        elif fact.kind == "stopped":
            self.hazards.move(flow, record[_ENTERED], ts, record[_STATE], hazards.STOP)
        else:
            self.hazards.leave(flow, record[_ENTERED], ts, record[_STATE])
        graded = [Graded(_MODEL, ts, y, record[_P_ENTRY]),
                  Graded(_MODEL + "_latest", ts, y, record[_P_LAST]),
                  Graded(_MODEL + "_baseline_flow", ts, y, record[_FLOW_RATE]),
                  Graded(_MODEL + "_baseline_conversion", ts, y, record[_CONV_ENTRY])]
        self.learned += 1
        counts = self.flows.setdefault(flow, [0, 0])
        counts[0] += 1
        counts[1] += y
        p = 1.0 if y else 0.0
        return ([self._row(fact, record, p, publish=True)], graded,
                [Move(flow, record[_COHORT], recipient, record[_P_LAST], p, fact.kind)])

    def _row(self, fact, record: list, p: float, publish: bool) -> PropensityRow:
        unsub = record[_UNSUB_LAST]
        advice = ("stop_mailing" if fact.kind not in FINAL and p < self.stop_below
                  and unsub > record[_UNSUB_ENTRY] * self.unsub_rise and unsub > 0 else "")
        return PropensityRow(fact.flow_id, fact.recipient_hash, round(p, 6), fact.ts_ms,
                             fact.kind, record[_COHORT], round(unsub, 6), advice, publish)

    def _score(self, flow: str, state: int, elapsed_ms: int) -> float:
        p = min(self.hazards.chance(flow, state, elapsed_ms), _P_MAX)
        return _F16.unpack(_F16.pack(p))[0]  # float16, like every graded prediction


_F16 = struct.Struct("<e")
#: A human touch older than this cools the journey (since_touch is log1p(hours) / 7).
COOL_HOURS = 6
_COOL = math.log1p(COOL_HOURS) / 7.0


def _state_of(journey: tuple[float, ...]) -> int:
    """The journey's state from its numbers (operators/journeys.py JOURNEY_FEATURES)."""
    if journey[6] > 0:  # bounced
        return hazards.BOUNCED
    if journey[2] <= 0:  # no human interaction yet
        return hazards.QUIET
    if journey[5] >= _COOL:  # the last human touch is older than COOL_HOURS
        return hazards.COOLED
    if journey[3] > 0 or journey[4] > 0:  # clicks, replies
        return hazards.ENGAGED
    return hazards.OPENED
