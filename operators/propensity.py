"""Convergence propensity: P(a recipient reaches a flow's goal within its window), re-scored
at every event of their journey, learnt online from how journeys end.

This runs in the models' step, fed the shards' `JourneyFact`s (operators/journeys.py)
in one event-time order, beside the per-message models (operators/learning.py):

- **Scored** at entering the flow and again at every fact of the open journey,
  from what is known at that moment: the journey so far (position, days since
  entering, human interactions, clicks, replies, time since the last human
  touch, a hard bounce, conversions elsewhere), the recipient's history, the
  per-message models' scores of the flow's latest delivery (engagement,
  conversion, unsubscribe risk), the provider, the flow, and the flow's running
  convergence (share of closed journeys that reached the goal).
- **Closed** by the goal (the score goes to 1, a positive label at once), an
  unsubscribe or complaint (0, negative) or the window passing (0, negative).
- **Learnt** with the outcome's timing in mind, predict-before-learn. A
  journey's samples are the features at entry and at each re-score (the first
  `MAX_SAMPLES`), so the model learns how a journey's course, days in and
  interactions so far, changes the odds. Each sample is learnt as a negative at once, and again
  as a positive if and when the goal is reached ("fake negatives", Ktena et
  al. 2019): positives count at once and negatives need not wait for the
  window, without the bias of learning positives early (a model that saw only
  the goals of its first week would believe everyone converges). The model
  then estimates g = p / (1 + p), and the score is p = g / (1 - g).
- **Graded** prequentially when the journey closes (`Graded`, for
  `model_metrics`): the entry score (`convergence`), the latest score before
  the end (`convergence_latest`), and two baselines measured the same way: the
  flow's running convergence at entry (`convergence_baseline_flow`) and the
  per-message conversion model's score of the entry delivery alone
  (`convergence_baseline_conversion`).

One River logistic regression serves every flow (the flow is a feature), so a
new flow starts from what the others taught. Rows: every change of a score
(`PropensityRow`, the latest per flow × recipient is the table
`flow_propensities`); `publish` marks the ones that moved by at least `step`
since the last published one (and entries and ends), for the topic
`mailflow.flow_propensities`. A recipient whose propensity fell below
`stop_below` while the unsubscribe risk of the flow's mail rose is flagged
`advice="stop_mailing"` (advice, never an action).

>>> from operators.journeys import JourneyFact
>>> book = PropensityBook()
>>> fact = JourneyFact(0, "welcome", "r1", "s", "gmail.com", 0, "enter", 7, (0.0,) * 8,
...                    (0.0,) * 7)
>>> rows, graded, moves = book.observe(fact, (0.1, 0.02, 0.001))
>>> rows[0].score, moves[0].old is None, graded    # untrained: 0.1
(0.099976, True, [])
>>> rows, graded, moves = book.observe(fact._replace(ts_ms=9, kind="goal"), None)
>>> rows[0].score, [g.model for g in graded][:2], moves[0].new
(1.0, ['convergence', 'convergence_latest'], 1.0)
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from river import linear_model, optim

from operators.journeys import FINAL, GOAL, JOURNEY_FEATURES
from operators.learning import Graded

# journey record fields
(_COHORT, _P_ENTRY, _P_LAST, _SAMPLES, _UNSUB_ENTRY, _UNSUB_LAST, _PUBLISHED,
 _CONV_ENTRY, _FLOW_RATE, _SCORES) = range(10)
#: Samples learnt per journey at most (each ~100 bytes while the journey is open).
MAX_SAMPLES = 16
#: Scores are capped below 1 until the goal is reached.
_P_MAX = 0.999
#: Where an untrained model starts: p = 0.1, so g = 1/11, logit(g) = -ln(10).
_G0_LOGIT = -2.302585
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
    """Scores, pending samples and learning of the convergence propensity."""

    def __init__(self, step: float = 0.05, stop_below: float = 0.05,
                 unsub_rise: float = 1.25):
        self.step, self.stop_below, self.unsub_rise = step, stop_below, unsub_rise
        # starts out at p = 0.1 (g = p / (1 + p)) rather than 0.999
        # (SGD 0.01 and l2 1e-3: measured on bench/convergence.py --engine against 0.05/1e-5
        # and 0.02/1e-4, entry ECE 0.11 vs 0.14 and 0.12, forecast error a day in 31% vs 38%)
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(0.01), l2=1e-3,
                                                     intercept_init=_G0_LOGIT)
        self.open: dict[str, dict[str, list]] = {}  # recipient -> flow -> record
        self.flows: dict[str, list[int]] = {}  # flow -> [closed journeys, reached]
        self.learned = 0

    def configure(self, step: float, stop_below: float) -> None:
        self.step, self.stop_below = step, stop_below

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
            x = self._x(fact, scores, rate)
            p = self._predict(x)
            self._learn(x, False)  # a fake negative, until the goal says otherwise
            record = [fact.cohort_day, p, p, [x], scores[2], scores[2], p, scores[1], rate,
                      scores]
            self.open.setdefault(recipient, {})[flow] = record
            row = self._row(fact, record, p, publish=True)
            return [row], [], [Move(flow, fact.cohort_day, recipient, None, p, kind)]
        if scores is None:
            scores = record[_SCORES]
        else:
            record[_SCORES] = scores
        x = self._x(fact, scores, self.flow_rate(flow))
        old = record[_P_LAST]
        p = self._predict(x)
        record[_P_LAST], record[_UNSUB_LAST] = p, scores[2]
        if len(record[_SAMPLES]) < MAX_SAMPLES:  # bounded memory per open journey
            self._learn(x, False)
            record[_SAMPLES].append(x)
        publish = abs(p - record[_PUBLISHED]) >= self.step
        if publish:
            record[_PUBLISHED] = p
        return ([self._row(fact, record, p, publish)], [],
                [Move(flow, record[_COHORT], recipient, old, p, kind)])

    def forget(self, recipient: str, ts_ms: int) -> list[Move]:
        """Erasure: the recipient's open journeys leave (their scores are dropped; the
        model and the flows' running rates keep what they learnt)."""
        journeys = self.open.pop(recipient, {})
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
        graded = [Graded(_MODEL, ts, y, record[_P_ENTRY]),
                  Graded(_MODEL + "_latest", ts, y, record[_P_LAST]),
                  Graded(_MODEL + "_baseline_flow", ts, y, record[_FLOW_RATE]),
                  Graded(_MODEL + "_baseline_conversion", ts, y, record[_CONV_ENTRY])]
        if y:  # every sample again, as the positive it turned out to be
            for x in record[_SAMPLES]:
                self._learn(x, True)
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

    def _predict(self, x: tuple) -> float:
        g = self.model.predict_proba_one(self._dict(x)).get(True, 0.0)
        p = min(g / (1.0 - g), _P_MAX) if g < 1.0 else _P_MAX  # undo the fake negatives
        return _F16.unpack(_F16.pack(p))[0]  # float16, like every graded prediction

    def _learn(self, x: tuple, y: bool) -> None:
        self.model.learn_one(self._dict(x), y)

    @staticmethod
    def _x(fact, scores: tuple[float, float, float], flow_rate: float) -> tuple:
        """The features, compact: (flow, provider, kind, float16-packed numbers)."""
        numbers = (*fact.journey, *fact.recipient, *scores, flow_rate)
        return (fact.flow_id, fact.provider, fact.kind,
                struct.pack(f"<{len(numbers)}e", *numbers))

    @staticmethod
    def _dict(x: tuple) -> dict[str, float]:
        flow, provider, _kind, packed = x
        values = struct.unpack(f"<{len(packed) // 2}e", packed)
        # what re-scored it (`kind`) is left out: the state it left behind says it
        d = {"bias": 1.0, "flow=" + flow: 1.0, "prov=" + provider: 1.0}
        d.update(zip(_NAMES, values, strict=False))
        # recipient-history numbers beyond the names known here (they may grow)
        for i in range(len(_NAMES), len(values) - 4):
            d[f"history_{i}"] = values[i]
        d["msg_engagement"], d["msg_conversion"], d["msg_unsubscribe"], d["flow_rate"] = (
            values[-4:])
        return d


_F16 = struct.Struct("<e")
_NAMES = JOURNEY_FEATURES
