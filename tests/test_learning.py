"""operators/learning.py: scores before outcomes, delayed labels, honest quality."""

from __future__ import annotations

import numpy as np
import pytest

from operators.features import (
    RECIPIENT_FEATURES,
    CampaignRates,
    HistoryBook,
    features,
    smoothed_rate,
)
from operators.learning import (
    _HEAD,
    _PRED,
    CONVERTED,
    ENGAGED,
    NEGATIVE_SAMPLE,
    TASKS,
    UNSUBSCRIBED,
    Delivered,
    Graded,
    Labelled,
    Learner,
    Sent,
    message_key,
    roc_auc,
)
from operators.model_quality import ModelQuality

H = 3_600_000
S, D = "news.example", "gmail.com"


class Feed(Learner):
    """A recipient shard's history and the models together, as the job's steps are:
    events in, facts to the models (`operators/analytics.py` does this for the job)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.history = HistoryBook(label_window_ms=self.label_window_ms)

    def deliver(self, message_id: str, recipient: str, campaign: str, variant: str, ts: int):
        fact = Delivered(ts, message_key(message_id), message_id, recipient, S, D, campaign,
                         variant, self.history.numbers(recipient, ts))
        self.history.delivered(recipient, ts, message_key(message_id))
        return self.on_delivered(fact)

    def sent(self, message_id: str, recipient: str, ts: int) -> float:
        return self.on_sent(Sent(ts, message_key(message_id), S, D,
                                 not self.history.ever_delivered(recipient)))

    def on_engagement(self, message_id: str, recipient: str, ts: int) -> None:
        self.history.engaged(recipient, ts, message_key(message_id))
        self.on_label(Labelled(ts, message_key(message_id), ENGAGED))

    def on_conversion(self, message_id: str, recipient: str, ts: int) -> None:
        self.history.engaged(recipient, ts, message_key(message_id))
        self.on_label(Labelled(ts, message_key(message_id), ENGAGED | CONVERTED))

    def on_unsubscribe(self, message_id: str, ts: int) -> None:
        self.on_label(Labelled(ts, message_key(message_id), UNSUBSCRIBED))


def deliver(learner: Feed, i: int, ts: int, recipient: str = "", campaign: str = "c",
            variant: str = ""):
    score, _graded = learner.deliver(f"m{i}", recipient or f"r{i}", campaign, variant, ts)
    return score


def labels(graded: list[Graded], model: str) -> list[int]:
    return [int(g.y) for g in graded if g.model == model]


def test_a_score_is_made_before_its_outcome_and_ignores_the_future():
    """Appending future events must not change a score already made (no label leak)."""
    a, b = Feed(label_window_s=3600), Feed(label_window_s=3600)
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
    # every stored feature of the probe, the new recipient ones included, is the same
    assert stored_features(a, "m999") == stored_features(b, "m999")
    x = stored_features(a, "m999")
    assert x["matured"] > 0 and x["eb_rate"] > 0 and any("|eb=" in k for k in x)


def stored_features(learner: Learner, message_id: str) -> dict[str, float]:
    record = learner.pending[message_key(message_id)]
    return learner._unpack(record[_HEAD.size + _PRED.size:], _HEAD.unpack_from(record)[-1])


def numbers(book: HistoryBook, recipient: str, ts: int) -> dict[str, float]:
    return dict(zip(RECIPIENT_FEATURES, book.numbers(recipient, ts), strict=True))


def test_matured_history_holds_only_labels_whose_window_closed():
    book = HistoryBook(label_window_ms=H)
    book.delivered("r", 0, key=1)
    book.engaged("r", 60_000, key=1)  # positive, but not matured until the window closes
    book.delivered("r", 10 * 60_000, key=2)  # no engagement yet: not a negative yet
    assert numbers(book, "r", 30 * 60_000)["matured"] == 0.0
    n = numbers(book, "r", H + 61_000)  # m1's window closed (end of minute + 1 h), m2's not
    assert n["matured"] == pytest.approx(1.0, abs=0.01)
    assert n["matured_pos"] == pytest.approx(1.0, abs=0.01)
    book.engaged("r", 2 * H, key=2)  # after m2's window: not its label
    n = numbers(book, "r", 2 * H)
    assert n["matured"] == pytest.approx(2.0, abs=0.01)
    assert n["matured_pos"] == pytest.approx(1.0, abs=0.01)


def test_future_events_do_not_change_the_history_numbers_of_the_past():
    def run(extra: bool):
        book = HistoryBook(label_window_ms=H)
        seen = []
        for i in range(60):
            ts = i * 20 * 60_000
            seen.append(book.numbers("r", ts))
            book.delivered("r", ts, key=i)
            if i % 4 == 0:
                book.opened("r", ts + 30_000, human=True)
                book.engaged("r", ts + 60_000, key=i)
            book.opened("r", ts + 2_000, human=False)
        if extra:  # the future: more engagements, more deliveries
            for i in range(60, 80):
                book.engaged("r", i * 20 * 60_000, key=i - 1)
                book.delivered("r", i * 20 * 60_000 + 1, key=i)
        return seen

    assert run(False) == run(True)


def test_machine_opens_stay_out_of_the_recipient_features():
    book, other = HistoryBook(), HistoryBook()
    for b in (book, other):
        b.delivered("r", 0, key=1)
        b.opened("r", 60_000, human=True)
    for i in range(20):
        other.opened("r", 120_000 + i, human=False)  # Apple's proxy, a scanner
    a, b = numbers(book, "r", H), numbers(other, "r", H)
    for name in ("human_open_rate", "hour_affinity", "quick_open_share", "matured",
                 "matured_pos", "engaged_7d"):
        assert a[name] == pytest.approx(b[name], rel=1e-9), name  # decayed in other steps
    assert a["quick_open_share"] > 0 and a["human_open_rate"] > 0


def test_empirical_bayes_shrinkage():
    rates = CampaignRates()
    x = features(HistoryBook().numbers("new", 0), D, S, "c", "", 0, rates)
    assert x["eb_rate"] == pytest.approx(rates.prior(S)) and x["eb_lift"] == 0.0
    assert x[f"prov={D}|eb=new"] == 1.0
    for _ in range(1000):  # the sender's recipients engage 10%: the prior follows
        rates.outcome("c", False, False, S)
    for _ in range(111):
        rates.outcome("c", True, False, S)
    prior = rates.prior(S)
    assert prior == pytest.approx(0.1, abs=0.01)
    fan = HistoryBook(label_window_ms=H)
    for i in range(12):
        fan.delivered("fan", i * 2 * H, key=i)
        fan.engaged("fan", i * 2 * H + 60_000, key=i)
    x_new = features(HistoryBook().numbers("new", 30 * H), D, S, "c", "", 30 * H, rates)
    x_fan = features(fan.numbers("fan", 30 * H), D, S, "c", "", 30 * H, rates)
    assert x_new["eb_rate"] == pytest.approx(prior)
    assert x_fan["eb_rate"] > 0.5 and x_fan["eb_lift"] > 0.5
    assert smoothed_rate(1, 1, prior) < smoothed_rate(10, 10, prior)  # more evidence, more weight


def test_crossed_features_join_the_recipient_with_provider_and_their_hour():
    fan = HistoryBook(label_window_ms=H)
    for i in range(12):
        fan.delivered("fan", i * 24 * H, key=i)  # deliveries at 00:00, engaged at once
        fan.opened("fan", i * 24 * H + 30_000, human=True)
        fan.engaged("fan", i * 24 * H + 60_000, key=i)
    ts = 12 * 24 * H
    x = features(fan.numbers("fan", ts), D, S, "c", "", ts, CampaignRates())
    crosses = sorted(k for k in x if "|" in k)
    assert crosses == [f"aff=on|eb={crosses[0].split('=')[-1]}",
                       f"prov={D}|eb={crosses[0].split('=')[-1]}"]
    assert crosses[0].endswith(("high", "top"))
    away = features(fan.numbers("fan", ts + 12 * H), D, S, "c", "", ts + 12 * H,
                    CampaignRates())
    assert away["hour_affinity"] < -0.3 and any(k.startswith("aff=off|") for k in away)


def test_a_history_kept_before_the_matured_labels_still_works():
    book = HistoryBook()
    book.recipients["r"] = [0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0]  # the old 8 fields
    del book.open_labels  # an old snapshot: no open labels either
    n = numbers(book, "r", H)
    assert n["matured"] == 0.0 and len(book.recipients["r"]) == len(RECIPIENT_FEATURES) + 1
    book.delivered("r", H, key=1)
    book.engaged("r", H + 1, key=1)
    assert numbers(book, "r", 30 * H)["matured_pos"] > 0.9


def test_the_features_stored_are_those_known_at_delivery():
    learner = Feed()
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
    learner = Feed(label_window_s=3600)
    deliver(learner, 1, 0)
    deliver(learner, 2, 0)
    learner.on_engagement("m1", "r1", 10 * 60_000)
    learner.on_engagement("m1", "r1", 11 * 60_000)  # a second click changes nothing
    assert learner.tick(59 * 60_000) == ([], [], [])  # window not closed: nothing graded
    expired, _, graded = learner.tick(2 * H)
    assert [r.engaged for r in expired] == [True, False]  # m1 positive, m2 by expiry
    assert labels(graded, "engagement") == [1, 0]
    assert len(labels(graded, "conversion")) == 2 and len(labels(graded, "unsubscribe")) == 2
    assert {g.ts_ms for g in graded} == {H + 60_000}  # graded when the window closed
    assert not learner.pending


def test_conversion_and_unsubscribe_labels():
    learner = Feed(label_window_s=3600)
    deliver(learner, 1, 0)
    deliver(learner, 2, 0)
    learner.on_conversion("m1", "r1", 60_000)
    learner.on_unsubscribe("m2", 60_000)
    graded = learner.tick(2 * H)[2]
    assert labels(graded, "engagement") == [1, 0]  # a credited conversion is an engagement
    assert labels(graded, "conversion") == [1, 0] and labels(graded, "unsubscribe") == [0, 1]


def test_deterministic_for_the_same_stream():
    def run():
        learner = Feed(label_window_s=1800)
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
    learner = Feed(label_window_s=1800)
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
    learner = Feed()
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
    learner = Feed()
    learner.sent("m1", "r-new", 0)
    deliver(learner, 2, 0, recipient="r-known")
    learner.sent("m3", "r-known", 1000)
    features = {}
    for mid in ("m1", "m3"):
        _ts, _pid, _p, packed, n_cats = learner.pending_sent[message_key(mid)]
        features[mid] = learner._unpack(packed, n_cats)
    assert features["m1"].get("new_recipient") == 1.0
    assert "new_recipient" not in features["m3"]


def test_negatives_are_down_sampled_and_weighted_but_every_label_is_scored():
    learner = Feed(label_window_s=60)
    for i in range(400):
        deliver(learner, i, 0)
    learner.on_engagement("m7", "r7", 1000)
    graded = labels(learner.tick(10 * 60_000)[2], "engagement")
    assert len(graded) == 400 and sum(graded) == 1  # every label scored
    sampled = {task: {i for i in range(400) if message_key(f"m{i}") % n == 0}
               for task, n in NEGATIVE_SAMPLE.items() if task in TASKS}
    sampled["engagement"].add(7)  # the one positive is always learned
    assert learner.updates == sum(len(s) for s in sampled.values()) < 400


def test_extra_ticks_between_facts_change_nothing_learned_or_graded():
    """The models' merge ticks before every fact (so a prediction has learned every label
    due before it), and also whenever every shard is past some point, which depends on
    batching: each label is graded, learned and resolved at its due time, so those extra
    ticks change nothing."""
    def run(extra: bool):
        learner = Feed(label_window_s=600)
        rng = np.random.default_rng(3)
        extra_at = np.random.default_rng(5)
        out = []
        for i in range(4000):
            ts = i * 1_500
            out += learner.tick(ts)[2]
            out.append(deliver(learner, i, ts, recipient=f"r{i % 150}"))
            if rng.random() < 0.1:
                learner.on_engagement(f"m{i}", f"r{i % 150}", ts + 500)
            if extra and extra_at.random() < 0.3:
                out += learner.tick(ts + int(extra_at.integers(0, 1_500)))[2]
        return out + learner.tick(10 ** 12)[2]
    plain, ticked = run(False), run(True)
    assert plain == ticked
    assert sum(type(g) is Graded and g.model == "engagement" for g in plain) == 4000


def test_a_record_pending_since_before_the_new_features_still_learns():
    """A snapshot taken before the matured-label features holds records with the nine
    numerics of then: they unpack (new numerics 0) and their labels are learned."""
    import struct

    learner = Feed(label_window_s=3600)
    deliver(learner, 1, 0)
    key = message_key("m1")
    record = learner.pending[key]
    n_cats = _HEAD.unpack_from(record)[-1]
    start = _HEAD.size + _PRED.size + 4 * n_cats
    old = struct.pack("<9e", 0.1, 0.2, 0.3, 0.4, 0.0, 1.0, 1.0, 0.05, 0.001)
    learner.pending[key] = record[:start] + old
    x = stored_features(learner, "m1")
    assert x["recency"] == 1.0 and x["campaign_rate"] == pytest.approx(0.05, abs=1e-3)
    assert x["eb_rate"] == 0.0 and x["matured"] == 0.0
    learner.on_engagement("m1", "r1", 60_000)
    assert labels(learner.tick(2 * H)[2], "engagement") == [1]
