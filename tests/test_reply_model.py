"""operators/reply_model.py: the online River text model for reply intents, with the rules
as its prior.

The corpus (schemas/data/replies_corpus.jsonl) is the project's own writing and the rules
were tuned on it; it wraps many replies a second time (quoted original, signature, HTML)
which stripping makes the same text again, so every split here is by distinct stripped
text. Thresholds are what was measured (in comments) minus slack, since the corpus grows.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest
from river import naive_bayes

from operators.replies import AUTO_INTENTS, INTENTS, ReplyVerdict, classify
from operators.reply_model import ModelVerdict, ReplyModel, reply_features, reply_text

DATA = Path(__file__).parent / "data"
CORPUS = Path(__file__).resolve().parents[1] / "schemas" / "data" / "replies_corpus.jsonl"
ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> list[dict]:
    path = CORPUS if name == CORPUS.name else DATA / name
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    for r in rows:
        r["text"] = reply_text(r["body"])
        r["group"] = r["text"].strip().lower()
        r["x"] = reply_features(r["subject"], r["text"])
        r["rules"] = classify(r["subject"], r["body"], r.get("headers") or {})
    return rows


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return _load("replies_corpus.jsonl")


@pytest.fixture(scope="module")
def fresh() -> list[dict]:
    return _load("replies_fresh_rmodel.jsonl")


def _split(rows: list[dict], seed: int, share: float) -> tuple[list[dict], list[dict]]:
    """(first, rest) by distinct stripped text: ``share`` of the texts go first."""
    groups = sorted({r["group"] for r in rows})
    random.Random(seed).shuffle(groups)
    first = set(groups[:int(len(groups) * share)])
    return [r for r in rows if r["group"] in first], [r for r in rows if r["group"] not in first]


def _broken(prior: ReplyVerdict) -> ReplyVerdict:
    """The rules deliberately wrong on one intent: `interested` becomes `not_interested`."""
    scores = dict(prior.scores)
    scores["not_interested"] += scores["interested"]
    scores["interested"] = 0.0
    intent = max(INTENTS, key=lambda c: (scores[c], -INTENTS.index(c)))
    return prior._replace(intent=intent, scores=scores, confidence=scores[intent])


# ---------------------------------------------------------------------------- features


@pytest.mark.parametrize("noisy, clean", [
    ("Please write to ann.smith@example.com today", "Please write to today"),
    ("Call me on +49 30 1234567 or (0171) 555-2398 please", "Call me on or please"),
    ("Order 2026120512345 never arrived", "Order never arrived"),
    ("Ticket hash:3f9a2b7c1d0e is still open", "Ticket is still open"),
    ("Write to <hash:3f9a2b7c1d0e> or (hash:3f9a2b7c1d0e), thanks", "Write to or thanks"),
    ("Invoice INV-2026-00123 and ref a3f9c2e81b07 are wrong", "Invoice and ref are wrong"),
    ("Mail ann%40example.com or ann＠example.com now", "Mail or now"),
    ("See https://acme.example/u?e=ann%40x.example and www.acme.example now", "See and now"),
])
def test_features_drop_addresses_phones_and_long_digit_strings(noisy, clean):
    assert reply_features("Re: x", noisy) == reply_features("Re: x", clean)


def test_feature_names_never_carry_digits_or_addresses(corpus):
    for r in corpus:
        for key in r["x"]:
            if key.startswith("c:"):
                assert key[2:].isdigit()
            else:
                assert "@" not in key and "hash:" not in key
                assert not any(ch.isdigit() for ch in key), key


def test_short_numbers_and_dates_keep_their_shape():
    f = reply_features("Re: x", "Back on 18 December 2026")
    assert f["w:<num>"] == 1.0 and f["w:<year>"] == 1.0 and f["b:on <num>"] == 1.0
    for date in ("18.12.2026", "18/12/2026", "2026-12-18"):
        f = reply_features("AW: x", f"Ich bin bis {date} im Urlaub")
        assert f["w:<num>"] == 2.0 and f["w:<year>"] == 1.0, date


def test_features_are_bounded_for_a_huge_reply():
    text = " ".join(f"word{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}" for i in range(20_000))
    assert len(reply_features("Re: x", text)) <= 1000


def test_features_are_the_same_in_another_process():
    """CRC-32, not hash(): a restarted job (another hash seed) must see the same features."""
    text = "Bitte schicken Sie mir ein Angebot für unsere drei Büros."
    code = ("import json; from operators.reply_model import reply_features; "
            f"print(json.dumps(reply_features('AW: Angebot', {text!r}), sort_keys=True))")
    outs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.add(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                                capture_output=True, text=True).stdout)
    assert len(outs) == 1
    assert json.loads(outs.pop()) == reply_features("AW: Angebot", text)


# ---------------------------------------------------------------------------- the model


def test_fast_prediction_is_rivers_naive_bayes(corpus):
    """The sparse log-likelihood formula gives River's MultinomialNB probabilities."""
    train, test = _split(corpus, 3, 0.7)
    model = ReplyModel.pretrained(train)
    river = naive_bayes.MultinomialNB(alpha=model.alpha)
    for r in train:
        river.learn_one(r["x"], r["intent"])
    for r in test[:60]:
        ours, theirs = model.predict_model(r["x"]), river.predict_proba_one(r["x"])
        for k in INTENTS:
            assert ours[k] == pytest.approx(theirs.get(k, 0.0), abs=1e-9)


def test_same_input_same_verdict_and_pickle_round_trip(corpus, fresh):
    model = ReplyModel.pretrained(corpus)
    for r in fresh[:20]:
        model.learn(r["x"], r["intent"], r["rules"])
    again = ReplyModel.pretrained(corpus)
    for r in fresh[:20]:
        again.learn(r["x"], r["intent"], r["rules"])
    restored = pickle.loads(pickle.dumps(model))
    assert restored.n_learned == model.n_learned == 20
    for r in fresh:
        v = model.predict(r["x"], r["rules"])
        assert isinstance(v, ModelVerdict)
        assert v == model.predict(r["x"], r["rules"]) == again.predict(r["x"], r["rules"])
        assert v == restored.predict(r["x"], r["rules"])
        assert sum(v.scores.values()) == pytest.approx(1.0)
        assert set(v.scores) == set(INTENTS) and v.source in ("rules", "model", "blend")


def test_pickle_stays_small_and_holds_no_words(corpus, fresh):
    model = ReplyModel.pretrained(corpus)
    for r in fresh:
        model.learn(r["x"], r["intent"], r["rules"])
    blob = pickle.dumps(model)
    assert len(blob) < 1_000_000  # measured 418 kB (corpus) and a little more after the fresh set
    for word in ("Becker", "becker", "Bestandskunden", "bestandskunden", "procurement"):
        assert word.encode() not in blob


def test_a_weakened_model_learns_from_feedback(corpus):
    """Start: a model from 10% of the corpus and rules wrong on one intent; the other
    texts arrive as feedback in seeded order, predict first, then learn."""
    start, rest = _split(corpus, 0, 0.1)
    stream, seen = [], set()
    for r in rest:
        if r["group"] not in seen:
            seen.add(r["group"])
            stream.append(r)
    random.Random(0).shuffle(stream)
    model = ReplyModel.pretrained(start)
    hits, rules_hits = [], []
    for r in stream:
        prior = _broken(r["rules"])
        hits.append(model.predict(r["x"], prior).intent == r["intent"])
        rules_hits.append(prior.intent == r["intent"])
        model.learn(r["x"], r["intent"], prior)
    first = sum(hits[:100]) / 100
    last = sum(hits[-200:]) / 200
    rules_last = sum(rules_hits[-200:]) / 200
    # measured: first 0.88, last 200 0.975, the broken rules alone on the same 200 0.87
    # (learning without the rules' verdict, only the text model learns: last 200 0.875)
    assert last >= first + 0.05
    assert last >= rules_last + 0.05
    assert model.n_learned == len(stream)
    q = model.quality()
    assert q["decided"]["n"] == q["rules"]["n"] == len(stream)
    assert q["decided"]["accuracy"] == pytest.approx(sum(hits) / len(hits))
    assert q["rules"]["accuracy"] == pytest.approx(sum(rules_hits) / len(rules_hits))


def test_feedback_corrects_a_rule_that_is_always_wrong():
    """Without a corpus: the rules keep calling pricing questions `not_interested`; after
    agents relabel a few, the same rule verdict on a similar text becomes `interested`."""
    model = ReplyModel()
    texts = ["How much is the pro plan for five users?", "What does the team plan cost?",
             "Could you send prices for the annual plan?", "What is the price per seat?"]
    wrong = classify("Re: x", "No thanks, not interested.", {})
    assert wrong.intent == "not_interested"
    for _ in range(8):
        for t in texts:
            model.learn(reply_features("Re: x", t), "interested", wrong)
        model.learn(reply_features("Re: x", "No thanks, not interested."), "not_interested",
                    wrong)
    probe = reply_features("Re: Offer", "What would the pro plan cost for our team?")
    v = model.predict(probe, wrong)
    assert v.intent == "interested" and v.source == "model"
    assert model.predict(reply_features("Re: x", "Not interested, thanks."),
                         wrong).intent == "not_interested"


def test_learn_on_relabelled_examples_changes_the_prediction(corpus):
    model = ReplyModel.pretrained(corpus)
    probe_text = "Ich hätte gern die Unterlagen zur Kooperation mit Ihrem Verband."
    probe = reply_features("AW: Verband", probe_text)
    prior = classify("AW: Verband", probe_text, {})
    before = model.predict(probe, prior)
    assert before.intent != "wrong_person"
    similar = ["Unterlagen zur Kooperation bitte an unseren Verband schicken, nicht an mich.",
               "Für Kooperationen mit dem Verband bin ich nicht zuständig.",
               "Die Unterlagen zur Kooperation gehen an die Verbandsleitung."]
    for _ in range(6):
        for t in similar:
            model.learn(reply_features("AW: Verband", t), "wrong_person",
                        classify("AW: Verband", t, {}))
    after = model.predict(probe, prior)
    assert after.intent == "wrong_person", after


def test_header_proven_machine_replies_keep_the_rule_verdict(corpus):
    model = ReplyModel.pretrained(corpus)
    proven = [r for r in corpus if r["rules"].auto and r["rules"].confidence >= 0.8
              and any(h.lower() in ("auto-submitted", "x-autoreply") for h in r["headers"])]
    assert len(proven) >= 30
    # Even agents insisting the wording is "interested" do not move a header-proven verdict.
    for r in proven[:40]:
        for _ in range(3):
            model.learn(r["x"], "interested", r["rules"])
    for r in proven:
        v = model.predict(r["x"], r["rules"])
        assert (v.intent, v.source, v.confidence) == (r["rules"].intent, "rules",
                                                      r["rules"].confidence)


def test_an_empty_model_is_the_rules():
    prior = classify("Re: x", "Please remove me from your mailing list.", {})
    v = ReplyModel().predict(reply_features("Re: x", "Please remove me"), prior)
    assert (v.intent, v.source, v.terms) == (prior.intent, "rules", ())


def test_pretrained_precision_and_recall_on_held_out_texts(corpus):
    train, test = _split(corpus, 7, 0.75)
    model = ReplyModel.pretrained(train)
    pairs = [(r["intent"], model.predict(r["x"], r["rules"]).intent) for r in test]
    alone = []
    for r in test:
        p = model.predict_model(r["x"])
        alone.append((r["intent"], max(INTENTS, key=p.__getitem__)))
    for k in INTENTS:
        tp = sum(t == k and p == k for t, p in pairs)
        # measured: precision >= 0.95 and recall >= 0.94 for every intent
        assert tp / max(1, sum(p == k for _, p in pairs)) >= 0.88, k
        assert tp / max(1, sum(t == k for t, _ in pairs)) >= 0.88, k
    # The text model alone (no rules) on texts it never saw; measured 0.82.
    assert sum(t == p for t, p in alone) / len(alone) >= 0.7


def test_fresh_set_blend_is_no_worse_than_the_rules(corpus, fresh):
    """The fresh set was written apart from the corpus and never trained or tuned on:
    measured rules 0.906, text model alone 0.981, blend 0.981 (see README: the first
    measurement, before the temperature was re-chosen on the corpus, was 0.972)."""
    model = ReplyModel.pretrained(corpus)
    rules = sum(r["rules"].intent == r["intent"] for r in fresh) / len(fresh)
    blend = sum(model.predict(r["x"], r["rules"]).intent == r["intent"] for r in fresh)
    # Slack of three replies: the rules are being improved and may catch up.
    assert blend / len(fresh) >= 0.9 and blend / len(fresh) >= rules - 3 / len(fresh)
    # Suppressions follow unsubscribe verdicts: the blend must not add wrong ones.
    def wrong_unsubscribes(decide) -> int:
        return sum(decide(r) == "unsubscribe_request" != r["intent"] for r in fresh)

    assert wrong_unsubscribes(lambda r: model.predict(r["x"], r["rules"]).intent) <= (
        wrong_unsubscribes(lambda r: r["rules"].intent))


def test_terms_are_readable_words_of_the_reply(corpus, fresh):
    model = ReplyModel.pretrained(corpus)
    named = 0
    for r in fresh:
        v = model.predict(r["x"], r["rules"])
        assert len(v.terms) <= 5
        for term in v.terms:
            assert "@" not in term and not any(ch.isdigit() for ch in term)
            assert f"w:{term}" in r["x"] or f"b:{term}" in r["x"]
        named += bool(v.terms)
    assert named >= len(fresh) // 2


def test_unknown_intent_is_refused_and_vocabulary_is_capped():
    model = ReplyModel(max_features=50)
    with pytest.raises(ValueError):
        model.learn({"w:x": 1.0}, "maybe")
    for i in range(40):
        model.learn(reply_features("Re: x", f"word{chr(97 + i % 26)} other{i % 7}"), "other")
    assert len(model._nb.feature_counts) <= 50


def test_bench_prints_the_learning_curves_and_the_fresh_set():
    out = subprocess.run([sys.executable, "bench/reply_learning.py", "--skip", "cv,cost",
                          "--seed", "1"], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    parts = {d["part"]: d for d in map(json.loads, out.splitlines())}
    assert set(parts) == {"curves", "fresh"}
    curves = parts["curves"]
    assert curves["weak_model+wrong_rules"]["overall"] > curves["wrong_rules"]["overall"]
    assert len(curves["rules"]["blocks"]) >= 5
    assert parts["fresh"]["n"] >= 80


@pytest.fixture(scope="module")
def fresh_final() -> list[dict]:
    return _load("replies_fresh_final.jsonl")


def test_an_independent_fresh_set_and_the_person_guard(corpus, fresh_final):
    """`replies_fresh_final.jsonl`: 209 replies written by someone who saw neither the
    code nor the corpus (EN 121, DE 38, FR/ES/NL 50). First score through the job, before
    anything was changed: 0.833 (rules alone 0.770). The person guard was then added for
    what it showed (people's French, Spanish and Dutch replies read as machine replies:
    the corpus has those languages mostly as machine text): 0.852, and 9 people's replies
    judged automatic instead of 16. Floors leave slack for the rules and corpus moving."""
    model = ReplyModel.pretrained(corpus)
    said = [model.predict(r["x"], r["rules"]).intent for r in fresh_final]
    assert sum(s == r["intent"] for s, r in zip(said, fresh_final, strict=True)) >= 0.8 * len(
        fresh_final)
    machine = [s for s, r in zip(said, fresh_final, strict=True)
               if r["intent"] not in AUTO_INTENTS and s in AUTO_INTENTS]
    unguarded = ReplyModel.pretrained(corpus, person_guard=1.0)
    machine_before = [r for r in fresh_final if r["intent"] not in AUTO_INTENTS
                      and unguarded.predict(r["x"], r["rules"]).intent in AUTO_INTENTS]
    assert len(machine) <= 12 and len(machine) < len(machine_before)


def test_an_empty_model_learning_from_the_helpdesk_is_never_worse_than_its_rules(fresh_final):
    """`reply_model = "empty"`: the text model learns from feedback only. Without the young
    model's damping its first labels outweighed the rules (0.742 against 0.770 on this
    stream, in time order); with it, it matches them while it learns."""
    stream = sorted(fresh_final, key=lambda r: r["ts"])
    model, hits = ReplyModel(), 0
    for r in stream:
        hits += model.predict(r["x"], r["rules"]).intent == r["intent"]
        model.learn(r["x"], r["intent"], r["rules"])
    rules = sum(r["rules"].intent == r["intent"] for r in stream)
    assert hits >= rules - 1
