"""operators/learning.py: scores before outcomes, delayed labels, honest quality."""

from __future__ import annotations

import numpy as np
import pytest

from operators.learning import (
    _HEAD,
    _PRED,
    EXPIRE_PER_TICK,
    NEGATIVE_SAMPLE,
    TASKS,
    Graded,
    Learner,
    message_key,
    roc_auc,
)
from operators.model_quality import ModelQuality

H = 3_600_000
S, D = "news.example", "gmail.com"


def deliver(learner: Learner, i: int, ts: int, recipient: str = "", campaign: str = "c",
            variant: str = ""):
    score, _graded = learner.on_delivered(f"m{i}", S, D, recipient or f"r{i}", campaign,
                                          variant, ts)
    return score


def labels(graded: list[Graded], model: str) -> list[int]:
    return [int(g.y) for g in graded if g.model == model]


def test_a_score_is_made_before_its_outcome_and_ignores_the_future():
    """Appending future events must not change a score already made (no label leak)."""
    a, b = Learner(label_window_s=3600), Learner(label_window_s=3600)
    history = [(i, i * 60_000) for i in range(200)]
    for i, ts in history:
        for learner in (a, b):
            deliver(learner, i, ts, recipient=f"r{i % 20}")
            if i % 3 == 0:
                learner.on_engagement(f"m{i}", f"r{i % 20}", ts + 30_000)
            learner.tick(ts)
    probe_a = deliver(a, 999, 200 * 60_000, recipient="r1")
    probe_b = deliver(b, 999, 200 * 60_000, recipient="r1")
    # b now sees the probe's own outcome and more future: a's score was made without them
    b.on_engagement("m999", "r1", 200 * 60_000 + 1000)
    for i in range(300, 350):
        deliver(b, i, 201 * 60_000 + i, recipient="r1")
    assert probe_a.score == probe_b.score
    # the learner only learned from the probe after its engagement: the pending record
    # holds the prediction made at delivery, and the label marks it resolved
    assert message_key("m999") in b.pending  # conversion and unsubscribe still open


def test_the_features_stored_are_those_known_at_delivery():
    learner = Learner()
    deliver(learner, 1, 0, recipient="r")
    learner.on_engagement("m1", "r", 1000)  # r engages after m1's delivery
    record = learner.pending[message_key("m1")]
    n_cats = _HEAD.unpack_from(record)[-1]
    x = learner._unpack(record[_HEAD.size + _PRED.size:], n_cats)
    assert x["never_engaged"] == 1.0 and x["recency"] == 1.0  # the engagement is not in it
    deliver(learner, 2, 2000, recipient="r")  # the next message does know it
    record = learner.pending[message_key("m2")]
    x = learner._unpack(record[_HEAD.size + _PRED.size:], _HEAD.unpack_from(record)[-1])
    assert x["never_engaged"] == 0.0


def test_labels_are_known_early_and_learned_when_the_window_closes():
    learner = Learner(label_window_s=3600)
    deliver(learner, 1, 0)
    deliver(learner, 2, 0)
    learner.on_engagement("m1", "r1", 10 * 60_000)
    learner.on_engagement("m1", "r1", 11 * 60_000)  # a second click changes nothing
    assert learner.tick(59 * 60_000) == ([], [], [])  # window not closed: nothing graded
    expired, _, graded = learner.tick(2 * H)
    assert [r.engaged for r in expired] == [True, False]  # m1 positive, m2 by expiry
    assert labels(graded, "engagement") == [1, 0]
    assert len(labels(graded, "conversion")) == 2 and len(labels(graded, "unsubscribe")) == 2
    assert {g.ts_ms for g in graded} == {2 * H}  # graded when the window closed
    assert not learner.pending


def test_conversion_and_unsubscribe_labels():
    learner = Learner(label_window_s=3600)
    deliver(learner, 1, 0)
    deliver(learner, 2, 0)
    learner.on_conversion("m1", "r1", 60_000)
    learner.on_unsubscribe("m2", 60_000)
    graded = learner.tick(2 * H)[2]
    assert labels(graded, "engagement") == [1, 0]  # a credited conversion is an engagement
    assert labels(graded, "conversion") == [1, 0] and labels(graded, "unsubscribe") == [0, 1]


def test_deterministic_for_the_same_stream():
    def run():
        learner = Learner(label_window_s=1800)
        scores = []
        rng = np.random.default_rng(7)
        for i in range(3000):
            ts = i * 5_000
            scores.append(deliver(learner, i, ts, recipient=f"r{i % 300}").score)
            if rng.random() < 0.2:
                learner.on_engagement(f"m{i}", f"r{i % 300}", ts + 1000)
            learner.tick(ts)
        return scores
    assert run() == run()


def test_models_learn_a_real_signal_and_beat_the_global_baseline():
    learner = Learner(label_window_s=1800)
    quality = ModelQuality()
    rng = np.random.default_rng(1)
    # recipients 0-99 engage 40% of the time, 100-999 only 2%
    for i in range(20_000):
        ts = i * 2_000
        r = int(rng.integers(0, 1000))
        deliver(learner, i, ts, recipient=f"r{r}")
        if rng.random() < (0.4 if r < 100 else 0.02):
            learner.on_engagement(f"m{i}", f"r{r}", ts + 60_000)
        quality.add(learner.tick(ts)[2])
    rows = {r.model: r for r in quality.flush(20_000 * 2_000)}
    assert rows["engagement"].roc_auc > 0.7  # perfect knowledge of the groups: ~0.81
    assert rows["engagement"].roc_auc > rows["engagement_baseline_global"].roc_auc + 0.15
    assert rows["engagement"].log_loss < rows["engagement_baseline_global"].log_loss


def test_pending_messages_are_compact():
    learner = Learner()
    for i in range(5000):
        deliver(learner, i, i * 1000, recipient=f"r{i % 500}", campaign=f"c{i % 7}")
    assert learner.pending_bytes() < 250


def test_roc_auc_matches_the_definition():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.9])
    pairs = [(pi > pj) + 0.5 * (pi == pj) for pi, yi in zip(p, y, strict=True) if yi
             for pj, yj in zip(p, y, strict=True) if not yj]
    assert roc_auc(y, p) == pytest.approx(sum(pairs) / len(pairs))
    assert roc_auc(np.array([1, 1]), np.array([0.2, 0.3])) == 0.5


def test_bounce_risk_sees_whether_the_recipient_is_new():
    """`new_recipient` is present only for never-delivered recipients (a categorical
    is 1.0 when present: packing cannot carry a 0.0 one)."""
    learner = Learner()
    learner.on_sent("m1", D, "r-new", S, 0)
    deliver(learner, 2, 0, recipient="r-known")
    learner.on_sent("m3", D, "r-known", S, 1000)
    features = {}
    for mid in ("m1", "m3"):
        _ts, _pid, _p, packed, n_cats = learner.pending_sent[message_key(mid)]
        features[mid] = learner._unpack(packed, n_cats)
    assert features["m1"].get("new_recipient") == 1.0
    assert "new_recipient" not in features["m3"]


def test_negatives_are_down_sampled_and_weighted_but_every_label_is_scored():
    learner = Learner(label_window_s=60)
    for i in range(400):
        deliver(learner, i, 0)
    learner.on_engagement("m7", "r7", 1000)
    graded = labels(learner.tick(10 * 60_000)[2], "engagement")
    assert len(graded) == 400 and sum(graded) == 1  # every label scored
    sampled = {task: {i for i in range(400) if message_key(f"m{i}") % n == 0}
               for task, n in NEGATIVE_SAMPLE.items() if task in TASKS}
    sampled["engagement"].add(7)  # the one positive is always learned
    assert learner.updates == sum(len(s) for s in sampled.values()) < 400


def test_a_jump_in_event_time_expires_labels_a_bounded_number_per_tick():
    learner = Learner(label_window_s=60)
    for i in range(EXPIRE_PER_TICK * 2 + 10):
        deliver(learner, i, i)  # all in the first minute
    first, _, _ = learner.tick(H)  # an hour later: every label is due
    assert len(first) == EXPIRE_PER_TICK and learner.pending
    second, _, _ = learner.tick(H + 1)  # same minute: the rest continues
    third, _, _ = learner.tick(H + 2)
    assert (len(second), len(third)) == (EXPIRE_PER_TICK, 10) and not learner.pending
    assert learner.tick(H + 3) == ([], [], [])
