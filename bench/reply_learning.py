"""Reply model: does helpdesk feedback make the reply intents better, and what does it cost?

Everything runs in-process on the project's own corpus (schemas/data/replies_corpus.jsonl,
written by us, so the rules were tuned on it) and on a small fresh set written separately
(tests/data/replies_fresh_rmodel.jsonl, never trained or tuned on). The corpus wraps many
replies a second time (quoted original, signature, HTML): after stripping those are the same
text, so every split and every stream below is by distinct stripped text ("group").

1. ``cv``: grouped k-fold on the corpus: rules alone, the model alone, the blend (a starting
   model with no feedback yet), accuracy and per-intent precision/recall.
2. ``curves``: prequential learning curves. A deliberately weakened start (a model from 10% of
   the groups; and a prior whose rules are wrong on one intent: every ``interested`` verdict
   turned into ``not_interested``), then the other groups arrive as feedback in seeded random
   order, one reply each: predict first, then learn the true intent. Accuracy per block of
   100 replies, beside the rules alone on the same stream.
3. ``fresh``: rules alone vs the corpus-trained model on the fresh set.
4. ``cost``: µs per reply for classify, features, predict (and learn), the pickle size.
5. ``candidates`` (``--candidates``): River models compared alone on the grouped folds.

    .venv/bin/python bench/reply_learning.py [--seed 0] [--folds 5] [--candidates]

Prints one JSON line per part.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from operators.replies import INTENTS, ReplyVerdict, classify  # noqa: E402
from operators.reply_model import ReplyModel, reply_features, reply_text  # noqa: E402

CORPUS = ROOT / "schemas" / "data" / "replies_corpus.jsonl"
FRESH = ROOT / "tests" / "data" / "replies_fresh_rmodel.jsonl"
CHOICES: dict = {}  # ReplyModel choices from --choice name=value


def load(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for row in rows:
        row["text"] = reply_text(row["body"])
        row["group"] = row["text"].strip().lower()
        row["x"] = reply_features(row["subject"], row["text"])
        row["rules"] = classify(row["subject"], row["body"], row.get("headers") or {})
    return rows


def folds_of(rows: list[dict], k: int, seed: int) -> dict[str, int]:
    groups = sorted({r["group"] for r in rows})
    random.Random(seed).shuffle(groups)
    return {g: i % k for i, g in enumerate(groups)}


def one_per_group(rows: list[dict]) -> list[dict]:
    seen: dict[str, dict] = {}
    for r in rows:
        seen.setdefault(r["group"], r)
    return list(seen.values())


def prf(pairs: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Per intent precision and recall of (truth, predicted) pairs."""
    out = {}
    for k in INTENTS:
        tp = sum(1 for t, p in pairs if t == k and p == k)
        predicted = sum(1 for _, p in pairs if p == k)
        actual = sum(1 for t, _ in pairs if t == k)
        out[k] = {"p": round(tp / predicted, 3) if predicted else None,
                  "r": round(tp / actual, 3) if actual else None, "n": actual}
    return out


def accuracy(pairs: list[tuple[str, str]]) -> float:
    return round(sum(t == p for t, p in pairs) / max(1, len(pairs)), 4)


def cross_validate(rows: list[dict], k: int, seed: int) -> dict:
    fold = folds_of(rows, k, seed)
    rules, alone, blend = [], [], []
    sources: Counter[str] = Counter()
    for i in range(k):
        train = [r for r in rows if fold[r["group"]] != i]
        model = ReplyModel.pretrained(train, **CHOICES)
        for r in rows:
            if fold[r["group"]] != i:
                continue
            v = model.predict(r["x"], r["rules"])
            p = model.predict_model(r["x"])
            rules.append((r["intent"], r["rules"].intent))
            alone.append((r["intent"], max(INTENTS, key=p.__getitem__)))
            blend.append((r["intent"], v.intent))
            sources[v.source] += 1
    return {"part": "cv", "folds": k, "n": len(rules), "groups": len(fold),
            "rules": accuracy(rules), "model_alone": accuracy(alone), "blend": accuracy(blend),
            "sources": dict(sources), "blend_prf": prf(blend), "model_alone_prf": prf(alone)}


def broken(prior: ReplyVerdict, wrong: str, instead: str) -> ReplyVerdict:
    """The rules with one intent deliberately wrong: its score goes to ``instead``."""
    scores = dict(prior.scores)
    scores[instead] = scores.get(instead, 0.0) + scores.get(wrong, 0.0)
    scores[wrong] = 0.0
    intent = max(INTENTS, key=lambda c: (scores[c], -INTENTS.index(c)))
    return prior._replace(intent=intent, scores=scores, confidence=scores[intent])


def curve(model: ReplyModel | None, stream: list[dict], prior_of, block: int,
          tell_prior: bool = True) -> dict:
    """Prequential: predict, score, then learn; accuracy per block. ``model`` None: rules only.
    ``tell_prior`` False: `learn` is not given the rules' verdict (their confusion stays at its
    pseudo-counts, only the text model learns)."""
    hits: list[int] = []
    for r in stream:
        prior = prior_of(r)
        if model is None:
            hits.append(prior.intent == r["intent"])
            continue
        hits.append(model.predict(r["x"], prior).intent == r["intent"])
        model.learn(r["x"], r["intent"], prior if tell_prior else None)
    blocks = [round(sum(hits[i:i + block]) / len(hits[i:i + block]), 3)
              for i in range(0, len(hits), block) if len(hits[i:i + block]) >= block // 2]
    out = {"blocks": blocks, "overall": round(sum(hits) / max(1, len(hits)), 4)}
    if model is not None:
        out["quality"] = {k: round(v["accuracy"], 4) for k, v in model.quality().items()}
    return out


def curves(rows: list[dict], seed: int, block: int, start_share: float) -> dict:
    groups = one_per_group(rows)
    rng = random.Random(seed)
    rng.shuffle(groups)
    n_start = int(len(groups) * start_share)
    start, stream = groups[:n_start], groups[n_start:]
    start_rows = [r for r in rows if r["group"] in {g["group"] for g in start}]

    def true_rules(r: dict) -> ReplyVerdict:
        return r["rules"]

    def wrong_rules(r: dict) -> ReplyVerdict:
        return broken(r["rules"], "interested", "not_interested")

    out = {"part": "curves", "seed": seed, "block": block, "start_rows": len(start_rows),
           "stream": len(stream)}
    out["rules"] = curve(None, stream, true_rules, block)
    out["weak_model+rules"] = curve(ReplyModel.pretrained(start_rows, **CHOICES), stream,
                                    true_rules, block)
    out["wrong_rules"] = curve(None, stream, wrong_rules, block)
    out["weak_model+wrong_rules"] = curve(ReplyModel.pretrained(start_rows, **CHOICES), stream,
                                          wrong_rules, block)
    out["weak_model+wrong_rules,learn_without_prior"] = curve(
        ReplyModel.pretrained(start_rows, **CHOICES), stream, wrong_rules, block, False)
    out["empty_model+wrong_rules"] = curve(ReplyModel(**CHOICES), stream, wrong_rules, block)
    return out


def fresh(corpus: list[dict], rows: list[dict]) -> dict:
    model = ReplyModel.pretrained(corpus, **CHOICES)
    rules = [(r["intent"], r["rules"].intent) for r in rows]
    alone, blend, sources = [], [], Counter()
    for r in rows:
        v = model.predict(r["x"], r["rules"])
        p = model.predict_model(r["x"])
        alone.append((r["intent"], max(INTENTS, key=p.__getitem__)))
        blend.append((r["intent"], v.intent))
        sources[v.source] += 1
    by_lang = {}
    for lang in sorted({r.get("language", "") for r in rows}):
        idx = [i for i, r in enumerate(rows) if r.get("language", "") == lang]
        by_lang[lang or "?"] = {"n": len(idx),
                                "rules": accuracy([rules[i] for i in idx]),
                                "blend": accuracy([blend[i] for i in idx])}
    return {"part": "fresh", "n": len(rows), "rules": accuracy(rules),
            "model_alone": accuracy(alone), "blend": accuracy(blend), "sources": dict(sources),
            "by_language": by_lang, "rules_prf": prf(rules), "blend_prf": prf(blend)}


def cost(corpus: list[dict], repeat: int) -> dict:
    model = ReplyModel.pretrained(corpus, **CHOICES)
    rows = corpus * repeat
    t0 = time.perf_counter()
    verdicts = [classify(r["subject"], r["body"], r.get("headers") or {}) for r in rows]
    t1 = time.perf_counter()
    texts = [reply_text(r["body"]) for r in rows]
    t2 = time.perf_counter()
    feats = [reply_features(r["subject"], t) for r, t in zip(rows, texts, strict=True)]
    t3 = time.perf_counter()
    for x, v in zip(feats, verdicts, strict=True):
        model.predict(x, v)
    t4 = time.perf_counter()
    for x, r, v in zip(feats, rows, verdicts, strict=True):
        model.learn(x, r["intent"], v)
    t5 = time.perf_counter()
    n = len(rows)
    us = {"classify": (t1 - t0) / n * 1e6, "strip": (t2 - t1) / n * 1e6,
          "features": (t3 - t2) / n * 1e6, "predict": (t4 - t3) / n * 1e6,
          "learn": (t5 - t4) / n * 1e6}
    per_reply = us["classify"] + us["features"] + us["predict"]
    fresh_model = ReplyModel.pretrained(corpus, **CHOICES)
    return {"part": "cost", "n": n, "us": {k: round(v, 1) for k, v in us.items()},
            "classify+features+predict_us": round(per_reply, 1),
            "replies_per_s": round(1e6 / per_reply),
            "pickle_bytes": len(pickle.dumps(fresh_model)),
            "features_in_model": len(fresh_model._nb.feature_counts),
            "mean_features_per_reply": round(sum(len(x) for x in feats) / n, 1)}


def candidates(rows: list[dict], k: int, seed: int) -> dict:
    """River models alone on the grouped folds (3 passes for the SGD ones, as a starting
    model would get), accuracy and µs per predict."""
    from river import linear_model, multiclass, naive_bayes, optim

    makers = {
        "MultinomialNB(alpha=1)": (lambda: naive_bayes.MultinomialNB(alpha=1.0), 1),
        "MultinomialNB(alpha=0.1)": (lambda: naive_bayes.MultinomialNB(alpha=0.1), 1),
        "SoftmaxRegression(SGD 0.05)": (
            lambda: linear_model.SoftmaxRegression(optimizer=optim.SGD(0.05)), 3),
        "OneVsRest(LogisticRegression SGD 0.1)": (
            lambda: multiclass.OneVsRestClassifier(
                linear_model.LogisticRegression(optimizer=optim.SGD(0.1))), 3),
        "OneVsRest(LogisticRegression AdaGrad 0.1)": (
            lambda: multiclass.OneVsRestClassifier(
                linear_model.LogisticRegression(optimizer=optim.AdaGrad(0.1))), 3),
    }
    fold = folds_of(rows, k, seed)
    out: dict = {"part": "candidates"}
    for name, (make, passes) in makers.items():
        pairs, spent = [], 0.0
        for i in range(k):
            model = make()
            train = [r for r in rows if fold[r["group"]] != i]
            for p in range(passes):
                random.Random(p).shuffle(train)
                for r in train:
                    model.learn_one(r["x"], r["intent"])
            for r in rows:
                if fold[r["group"]] == i:
                    t = time.perf_counter()
                    proba = model.predict_proba_one(r["x"])
                    spent += time.perf_counter() - t
                    pairs.append((r["intent"], max(proba, key=proba.get) if proba else "other"))
        out[name] = {"accuracy": accuracy(pairs), "predict_us": round(spent / len(pairs) * 1e6)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--block", type=int, default=100)
    ap.add_argument("--start-share", type=float, default=0.1)
    ap.add_argument("--repeat", type=int, default=2, help="corpus passes for the cost part")
    ap.add_argument("--candidates", action="store_true")
    ap.add_argument("--choice", action="append", default=[], metavar="NAME=VALUE",
                    help="a ReplyModel choice, e.g. temperature=16 (repeatable)")
    ap.add_argument("--skip", default="", help="parts to skip, e.g. cost,fresh")
    args = ap.parse_args()
    for item in args.choice:
        name, value = item.split("=", 1)
        CHOICES[name] = json.loads(value)
    skip = set(args.skip.split(","))
    corpus = load(CORPUS)
    if "cv" not in skip:
        print(json.dumps(cross_validate(corpus, args.folds, args.seed)), flush=True)
    if "curves" not in skip:
        print(json.dumps(curves(corpus, args.seed, args.block, args.start_share)), flush=True)
    if FRESH.exists() and "fresh" not in skip:
        print(json.dumps(fresh(corpus, load(FRESH))), flush=True)
    if "cost" not in skip:
        print(json.dumps(cost(corpus, args.repeat)), flush=True)
    if args.candidates:
        print(json.dumps(candidates(corpus, args.folds, args.seed)), flush=True)


if __name__ == "__main__":
    main()
