"""Online models with delayed labels: score at delivery, learn when the outcome is known.

At each `delivered` event the learner builds the features known at that moment
(`operators/features.py`), scores the message with every model *before* any
outcome exists, and parks the message as *pending*: its features (packed,
~40 bytes) and the predictions made. Labels arrive later, in event time:

- **engagement**: positive on the first genuine engagement with the message
  (human click, reply, or a conversion it gets last-touch credit for);
- **conversion**: positive when a conversion gives the message last-touch credit;
- **unsubscribe risk**: positive on an unsubscribe or complaint about the message;
- all three negative if nothing happened when the label window (default 1 day)
  closes in event time.

When the window closes, each label is first scored against the prediction
made at delivery (prequential: predict, then learn; the reported quality is
honest), then the model learns from exactly the features it predicted with:
every positive, and one negative in `NEGATIVE_SAMPLE[task]` weighted up by the
same factor (negatives are 96% or more of the labels; learning from all of them
cost four times the updates for about 0.005 ROC AUC on `bench/models.py`).
Learning waits for the window even for early positives: otherwise positives
would always be learned before the negatives of the same period, and the
models (and baselines) would overestimate engagement by a window's worth. The bounce-risk
model works the same way per provider, from `sent` to `delivered`/`bounce`.

Models are River logistic regressions on hashed features: one shared per task,
plus one per sender once the sender has `per_sender_min_labels` labels (until
then the shared one scores; both learn). ADWIN watches each model's log loss;
a drift writes a model event and, if enabled, swaps in a fresh model while
keeping the old one for rollback.
"""

from __future__ import annotations

import heapq
import math
import struct
import time
from hashlib import blake2b
from typing import Any, NamedTuple

import numpy as np
from river import drift, linear_model, optim

from operators.features import CampaignRates, bucket, features

TASKS = ("engagement", "conversion", "unsubscribe")
_MINUTE_MS = 60_000
_NUMERIC = ("freq_7d", "fatigue_1d", "engaged_7d", "engagement_rate", "machine_open_share",
            "never_engaged", "recency", "matured", "matured_pos", "human_open_rate",
            "hour_affinity", "quick_open_share", "eb_rate", "eb_lift", "campaign_rate",
            "campaign_unsub_rate")
_NUMERIC_SET = frozenset(_NUMERIC)
#: The numerics of pending records written before the matured-label features.
_NUMERIC_V1 = ("freq_7d", "fatigue_1d", "engaged_7d", "engagement_rate", "machine_open_share",
               "never_engaged", "recency", "campaign_rate", "campaign_unsub_rate")
_NUMS_V1 = struct.Struct(f"<{len(_NUMERIC_V1)}e")
_NUMERIC_ZEROS = dict.fromkeys(_NUMERIC, 0.0)  # the bounce-risk model's (unused) numerics
#: Pending record: delivered ts (s), open-label bits, sender, campaign, variant, provider,
#: number of categorical features; then 5 predictions; then the features.
_HEAD = struct.Struct("<IBHIHHB")
_PRED = struct.Struct("<5e")  # engagement, conversion, unsubscribe, global and provider baseline
_NUMS = struct.Struct(f"<{len(_NUMERIC)}e")
_F16 = struct.Struct("<e")
_BITS = {"engagement": 1, "conversion": 2, "unsubscribe": 4}  # ENGAGED, CONVERTED, UNSUB…
#: Negatives each task learns from: one in N (chosen by message key, so deterministic),
#: weighted by N. Positives are rare (engagement ~4%, conversion and unsubscribe well
#: under 1%, hard bounces ~1% of sends), so this cuts River updates about fourfold.
NEGATIVE_SAMPLE = {"engagement": 4, "conversion": 8, "unsubscribe": 8, "bounce_risk": 8}
_ALL_BITS = 7


def learning_weight(task: str, key: int, positive: bool) -> float:
    """Weight a label is learned with: 1 for a positive, N for the one negative in N
    that `NEGATIVE_SAMPLE` keeps (by message key), 0 (not learned) for the others."""
    if positive:
        return 1.0
    rate = NEGATIVE_SAMPLE[task]
    return 0.0 if key % rate else float(rate)


def message_key(message_id: str) -> int:
    """64-bit key of a message id (stable across processes and restarts)."""
    return int.from_bytes(blake2b(message_id.encode(), digest_size=8).digest(), "little")


class Score(NamedTuple):
    message_id: str
    sender: str
    domain: str
    model: str
    score: float  # P(genuine engagement), before any outcome is known
    conversion: float
    unsubscribe_risk: float
    event_ts_ms: int


class ModelMetricRow(NamedTuple):
    """Prequential quality of one model as of `minute_ms` (`operators/model_quality.py`)."""

    model: str
    minute_ms: int
    n: int  # labels scored so far
    n_window: int  # labels in the evaluation window below
    roc_auc: float
    log_loss: float
    positive_rate: float
    ece: float = 0.0  # expected calibration error over tenths of predicted probability


class Graded(NamedTuple):
    """One label scored against the prediction made before it was known: what
    `ModelQuality` (operators/model_quality.py) turns into `ModelMetricRow`s."""

    model: str  # engagement, conversion, unsubscribe, the two baselines, bounce_risk
    ts_ms: int  # event time at which the label was graded
    y: bool
    p: float  # the prediction made at delivery (at send, for bounce_risk)


class ModelEvent(NamedTuple):
    ts_ms: int
    model: str
    event: str  # drift, reset
    detail: str


class Resolved(NamedTuple):
    """A label known: what the bandit needs."""

    campaign: str
    variant: str
    engaged: bool
    ts_ms: int


# -- what the recipient shards tell the models (facts, in event-time order) -----------------

class Sent(NamedTuple):
    """A message is about to be attempted: its bounce risk is scored."""

    ts_ms: int
    key: int  # `message_key` of the per-recipient message id
    sender: str
    provider: str
    new_recipient: bool  # never delivered to before


class Delivered(NamedTuple):
    """A message was delivered: it is scored, and waits for its labels."""

    ts_ms: int
    key: int
    message_id: str  # as the event named it (what the score is published under)
    recipient_hash: str
    sender: str
    provider: str
    campaign: str
    variant: str
    recipient: tuple[float, ...]  # `HistoryBook.numbers` at delivery


class Labelled(NamedTuple):
    """A message's outcome became known before its window closed (positive labels)."""

    ts_ms: int
    key: int
    bits: int  # ENGAGED | CONVERTED | UNSUBSCRIBED


class Bounced(NamedTuple):
    """A sent message bounced hard: the bounce-risk label."""

    ts_ms: int
    key: int


class ForgetMessages(NamedTuple):
    """An erasure: the pending labels of one recipient's messages go (and, in the models'
    step, their flow journeys)."""

    ts_ms: int
    recipient_hash: str
    keys: tuple[int, ...]
    flows: tuple[str, ...] = ()  # every flow they had a journey in (published keys)


ENGAGED, CONVERTED, UNSUBSCRIBED = 1, 2, 4
#: Everything the models hear from the shards.
ModelFact = Sent | Delivered | Labelled | Bounced | ForgetMessages


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Exact ROC AUC (Mann–Whitney with average ranks for ties); 0.5 if one class only."""
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return 0.5
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=np.float64)
    ranks[order] = np.arange(1, len(p) + 1)
    # average ranks of ties
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _new_model(task: str = "") -> linear_model.LogisticRegression:
    """The engagement model steps with AdaGrad: its many sparse crosses each get their own
    step size (+0.007 ROC AUC on `bench/models.py`); for the rarer conversion and
    unsubscribe labels AdaGrad was worse (conversion -0.03), so they keep plain SGD."""
    if task == "engagement":
        return linear_model.LogisticRegression(optimizer=optim.AdaGrad(0.1), l2=1e-5)
    return linear_model.LogisticRegression(optimizer=optim.SGD(0.05), l2=1e-5)


class _Task:
    """One prediction task: shared model, per-sender models, drift watch."""

    def __init__(self, name: str, per_sender_min_labels: int, reset_on_drift: bool):
        self.name = name
        self.shared = _new_model(name)
        self.by_sender: dict[int, linear_model.LogisticRegression] = {}
        self.labels_by_sender: dict[int, int] = {}
        self.min_labels = per_sender_min_labels
        self.previous: linear_model.LogisticRegression | None = None  # kept for rollback
        self.adwin = drift.ADWIN()
        self.reset_on_drift = reset_on_drift

    def model_for(self, sender: int) -> tuple[Any, str]:
        model = self.by_sender.get(sender)
        if model is not None and self.labels_by_sender.get(sender, 0) >= self.min_labels:
            return model, f"{self.name}:sender"
        return self.shared, f"{self.name}:shared"

    def predict(self, sender: int, x: dict[str, float]) -> tuple[float, str]:
        model, name = self.model_for(sender)
        return model.predict_proba_one(x).get(True, 0.0), name

    def learn(self, sender: int, x: dict[str, float], y: bool, p: float, ts_ms: int,
              weight: float = 1.0) -> ModelEvent | None:
        self.shared.learn_one(x, y, w=weight)
        model = self.by_sender.get(sender)
        if model is None:
            model = self.by_sender[sender] = _new_model(self.name)
        model.learn_one(x, y, w=weight)
        self.labels_by_sender[sender] = self.labels_by_sender.get(sender, 0) + 1
        q = min(max(p, 1e-6), 1 - 1e-6)
        self.adwin.update(-math.log(q) if y else -math.log(1 - q))
        if self.adwin.drift_detected:
            if self.reset_on_drift:
                self.previous, self.shared = self.shared, _new_model(self.name)
                return ModelEvent(ts_ms, self.name, "reset", "log loss drift (ADWIN); "
                                  "previous model kept for rollback")
            return ModelEvent(ts_ms, self.name, "drift", "log loss drift (ADWIN)")
        return None


class Learner:
    """All online models of the engine, fed the shards' facts in one event-time order.

    It sees every recipient's messages (the recipient histories behind the
    features stay in the shards and arrive inside the facts), so the models learn
    from all the traffic however many shards there are. The `on_*` methods return
    what became known: scores, model events and graded labels (`Graded`: each
    label against the prediction made before it, for `ModelQuality`); `tick(ts)`
    expires labels and returns what they resolved (for the bandit). Expiry costs
    what expires: pending messages are filed by delivery minute, the minutes are
    a heap. Every label is graded, learned and resolved at its *due* time (the end
    of its delivery minute plus the label window), so the results do not depend
    on how often `tick` is called.
    """

    def __init__(self, label_window_s: int = 86_400, per_sender_min_labels: int = 2000,
                 reset_on_drift: bool = False):
        self.label_window_ms = label_window_s * 1000
        self.campaigns = CampaignRates()
        self.tasks = {t: _Task(t, per_sender_min_labels, reset_on_drift) for t in TASKS}
        self.bounce = _Task("bounce_risk", per_sender_min_labels, reset_on_drift)
        self.pending: dict[int, bytes] = {}
        self.pending_sent: dict[int, tuple[int, int, float, bytes, int]] = {}
        self._expiry: dict[int, list[int]] = {}  # delivery minute -> message keys
        self._expiry_minutes: list[int] = []  # heap of the minutes in _expiry
        self._sent_expiry: dict[int, list[int]] = {}
        self._sent_minutes: list[int] = []  # heap of the minutes in _sent_expiry
        self.cats: dict[str, int] = {}
        self.cat_names: list[str] = []
        self.names: dict[str, dict[str, int]] = {"sender": {}, "campaign": {}, "variant": {},
                                                 "provider": {}}
        self.values: dict[str, list[str]] = {k: [] for k in self.names}
        self.base = [0, 0]  # labels, positives (engagement), for the global baseline
        self.base_by_provider: dict[int, list[int]] = {}
        self.update_seconds = 0.0  # time in learn_one, for the job's metrics
        self.updates = 0

    # -- packing ---------------------------------------------------------------
    def _id(self, kind: str, value: str) -> int:
        table = self.names[kind]
        i = table.get(value)
        if i is None:
            i = table[value] = len(self.values[kind])
            self.values[kind].append(value)
        return i

    def _pack(self, x: dict[str, float]) -> tuple[bytes, int, dict[str, float]]:
        """Features as bytes, and the float16-rounded dict the models see (predict and learn
        use exactly the same numbers). Every feature not in `_NUMERIC` is a present
        categorical: its value must be 1.0 (absent ones are left out)."""
        cats = []
        seen: dict[str, float] = {}
        ids = self.cats
        for k in x:
            if k not in _NUMERIC_SET:
                i = ids.get(k)
                if i is None:
                    i = ids[k] = len(self.cat_names)
                    self.cat_names.append(k)
                cats.append(i)
                seen[k] = 1.0
        nums = _NUMS.pack(*[x[k] for k in _NUMERIC])
        seen.update(zip(_NUMERIC, _NUMS.unpack(nums), strict=True))
        return struct.pack(f"<{len(cats)}I", *cats) + nums, len(cats), seen

    def _unpack(self, packed: bytes, n_cats: int) -> dict[str, float]:
        x = {self.cat_names[i]: 1.0 for i in struct.unpack_from(f"<{n_cats}I", packed)}
        if len(packed) - 4 * n_cats == _NUMS.size:
            x.update(zip(_NUMERIC, _NUMS.unpack_from(packed, 4 * n_cats), strict=True))
        else:  # a record pending since before the matured-label features (a snapshot)
            x.update(_NUMERIC_ZEROS)
            x.update(zip(_NUMERIC_V1, _NUMS_V1.unpack_from(packed, 4 * n_cats), strict=True))
        return x

    def scores_of(self, key: int) -> tuple[float, float, float] | None:
        """(engagement, conversion, unsubscribe risk) predicted at a pending message's
        delivery; None once its labels have matured (or it is unknown)."""
        record = self.pending.get(key)
        return None if record is None else _PRED.unpack_from(record, _HEAD.size)[:3]

    def pending_bytes(self) -> float:
        """Measured memory per pending message: record bytes + key + dict slot + index."""
        if not self.pending:
            return 0.0
        import sys

        sample = list(self.pending.items())[:1000]
        per = sum(sys.getsizeof(v) + sys.getsizeof(k) for k, v in sample) / len(sample)
        return per + 8 / 0.66 * 2 + 8  # dict slot (index + entry at 2/3 load) + expiry list

    # -- facts -----------------------------------------------------------------
    def on_sent(self, fact: Sent) -> float:
        """Bounce risk of a message about to be attempted (per provider)."""
        x = {"bias": 1.0, bucket("sender", fact.sender): 1.0}
        if fact.new_recipient:
            x["new_recipient"] = 1.0
        packed, n_cats, x = self._pack(x | _NUMERIC_ZEROS)
        pid = self._id("provider", fact.provider)
        p, _ = self.bounce.predict(pid, x)
        # float16, like the other models' stored predictions (exact AUC in ModelQuality)
        p = _F16.unpack(_F16.pack(p))[0]
        self.pending_sent[fact.key] = (fact.ts_ms, pid, p, packed, n_cats)
        _file(self._sent_expiry, self._sent_minutes, fact.ts_ms // _MINUTE_MS, fact.key)
        return p

    def on_delivered(self, fact: Delivered) -> tuple[Score, list[Graded]]:
        """The message's score, and its bounce-risk label (not bounced) if it was sampled."""
        ts_ms = fact.ts_ms
        _, graded = self._bounce_label(fact.key, False, ts_ms)
        packed, n_cats, x = self._pack(features(fact.recipient, fact.provider, fact.sender,
                                                fact.campaign, fact.variant, ts_ms,
                                                self.campaigns))
        sid = self._id("sender", fact.sender)
        pid = self._id("provider", fact.provider)
        p_eng, model_name = self.tasks["engagement"].predict(sid, x)
        p_conv, _ = self.tasks["conversion"].predict(sid, x)
        p_unsub, _ = self.tasks["unsubscribe"].predict(sid, x)
        labels, pos = self.base
        g = (pos + 1) / (labels + 2)
        pn = self.base_by_provider.get(pid, (0, 0))
        p_prov = (pn[1] + 2 * g) / (pn[0] + 2)
        head = _HEAD.pack(ts_ms // 1000, 0, sid, self._id("campaign", fact.campaign),
                          self._id("variant", fact.variant), pid, n_cats)
        self.pending[fact.key] = head + _PRED.pack(p_eng, p_conv, p_unsub, g, p_prov) + packed
        _file(self._expiry, self._expiry_minutes, ts_ms // _MINUTE_MS, fact.key)
        return Score(fact.message_id, fact.sender, fact.provider, model_name, round(p_eng, 6),
                     round(p_conv, 6), round(p_unsub, 6), ts_ms), graded

    def on_bounce(self, fact: Bounced) -> tuple[list[ModelEvent], list[Graded]]:
        return self._bounce_label(fact.key, True, fact.ts_ms)

    def on_label(self, fact: Labelled) -> None:
        """Mark a pending message's positive labels (no-op if unknown or already known).

        Learning waits until the label window closes: positives are known early and
        negatives only at the end, and a model that learned positives at once would
        spend every window believing everyone engages.
        """
        record = self.pending.get(fact.key)
        if record is None:
            return
        bits = record[4]
        new_bits = bits | fact.bits
        if new_bits != bits:
            self.pending[fact.key] = record[:4] + bytes([new_bits]) + record[5:]

    # -- erasure ---------------------------------------------------------------
    def forget(self, keys: tuple[int, ...] | list[int]) -> int:
        """Drop the pending labels of one recipient's messages (their `message_key`s, as the
        recipient's shard knows them); how many entries went.

        The models and the campaign rates are sums over everybody and stay: a label
        already learned cannot be taken back out of a logistic regression.

        >>> learner = Learner()
        >>> _ = learner.on_delivered(Delivered(60_000, 7, "m1", "r", "s", "gmail.com", "c", "",
        ...                                    (0.0,) * 12))
        >>> len(learner.pending), learner.forget([7]), len(learner.pending)
        (1, 1, 0)
        """
        dropped = 0
        for key in keys:
            # The expiry lists keep the key; expiring a key that is gone is a no-op.
            dropped += (self.pending.pop(key, None) is not None)
            dropped += (self.pending_sent.pop(key, None) is not None)
        return dropped

    # -- labels ----------------------------------------------------------------
    def _score(self, task: str, pid: int, y: bool, preds: tuple[float, ...], ts_ms: int,
               graded: list[Graded]) -> None:
        """Prequential quality: every label against the prediction made at delivery."""
        graded.append(Graded(task, ts_ms, y, preds[TASKS.index(task)]))
        if task == "engagement":
            graded.append(Graded("engagement_baseline_global", ts_ms, y, preds[3]))
            graded.append(Graded("engagement_baseline_provider", ts_ms, y, preds[4]))
            self.base[0] += 1
            self.base[1] += y
            pn = self.base_by_provider.setdefault(pid, [0, 0])
            pn[0] += 1
            pn[1] += y

    def _learn(self, task: str, sid: int, x: dict[str, float], y: bool,
               preds: tuple[float, ...], ts_ms: int, weight: float = 1.0) -> list[ModelEvent]:
        started = time.perf_counter()
        event = self.tasks[task].learn(sid, x, y, preds[TASKS.index(task)], ts_ms, weight)
        self.update_seconds += time.perf_counter() - started
        self.updates += 1
        return [event] if event is not None else []

    def _bounce_label(self, key: int, bounced: bool, ts_ms: int
                      ) -> tuple[list[ModelEvent], list[Graded]]:
        entry = self.pending_sent.pop(key, None)
        if entry is None:
            return [], []
        # Deliveries outnumber bounces a hundred to one: only the sampled ones count.
        weight = learning_weight("bounce_risk", key, bounced)
        if not weight:
            return [], []
        _sent, pid, p, packed, n_cats = entry
        graded = [Graded("bounce_risk", ts_ms, bounced, p)]
        event = self.bounce.learn(pid, self._unpack(packed, n_cats), bounced, p, ts_ms, weight)
        return ([event] if event is not None else []), graded

    # -- time --------------------------------------------------------------------
    def due_ms(self, minute: int) -> int:
        """When the labels of messages delivered in `minute` close (event time)."""
        return (minute + 1) * _MINUTE_MS + self.label_window_ms

    def tick(self, ts_ms: int) -> tuple[list[Resolved], list[ModelEvent], list[Graded]]:
        """Event time reached `ts_ms`: labels not resolved within the window are negative.
        What they resolved, the model events of learning them, and the labels graded.

        Each label is graded, learned and resolved at its due time, so calling `tick`
        more or less often changes nothing but when the work is done.
        """
        last = (ts_ms - self.label_window_ms) // _MINUTE_MS  # minutes before it are due
        resolved: list[Resolved] = []
        events: list[ModelEvent] = []
        graded: list[Graded] = []
        minutes, expiry = self._expiry_minutes, self._expiry
        while minutes and minutes[0] < last:
            minute = heapq.heappop(minutes)
            due = self.due_ms(minute)
            for key in expiry.pop(minute):
                record = self.pending.pop(key, None)
                if record is None:
                    continue
                _ts_s, bits, sid, cid, vid, pid, n_cats = _HEAD.unpack_from(record)
                preds = _PRED.unpack_from(record, _HEAD.size)
                x = None
                for task in TASKS:
                    y = bool(bits & _BITS[task])
                    self._score(task, pid, y, preds, due, graded)
                    weight = learning_weight(task, key, y)
                    if weight:
                        if x is None:
                            x = self._unpack(record[_HEAD.size + _PRED.size:], n_cats)
                        events += self._learn(task, sid, x, y, preds, due, weight)
                campaign = self.values["campaign"][cid]
                resolved.append(Resolved(campaign, self.values["variant"][vid],
                                         bool(bits & ENGAGED), due))
                self.campaigns.outcome(campaign, bool(bits & ENGAGED), bool(bits & UNSUBSCRIBED),
                                       self.values["sender"][sid])
        # sends never answered within the window: no bounce label
        minutes, expiry = self._sent_minutes, self._sent_expiry
        while minutes and minutes[0] < last:
            for key in expiry.pop(heapq.heappop(minutes)):
                self.pending_sent.pop(key, None)
        return resolved, events, graded


def _file(expiry: dict[int, list[int]], minutes: list[int], minute: int, key: int) -> None:
    """File a pending key under its minute; a new minute goes on the heap."""
    keys = expiry.get(minute)
    if keys is None:
        expiry[minute] = [key]
        heapq.heappush(minutes, minute)
    else:
        keys.append(key)
