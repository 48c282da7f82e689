"""The reply text model a job starts from, and the corpus it is trained on.

The corpus (`schemas/data/replies_corpus.jsonl`, written by
`tests/data/make_replies_corpus.py`) ships with the code: a job trains its starting
model from it once per process (about a second) and every reply desk begins from a copy,
so a model is useful on day one and learns from the helpdesk's feedback after that.
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path
from typing import Any

import orjson

#: The labelled replies the starting model learns from (shipped with the code).
CORPUS = Path(__file__).resolve().parents[1] / "schemas" / "data" / "replies_corpus.jsonl"


def reply_corpus(path: Path = CORPUS) -> list[dict]:
    """The corpus rows ({subject, body, headers, intent, ...}); [] when it is missing."""
    try:
        text = path.read_bytes()
    except OSError:
        return []
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


@functools.cache
def _trained() -> bytes | None:
    rows = reply_corpus()
    if not rows:
        return None
    from operators.reply_model import ReplyModel

    return pickle.dumps(ReplyModel.pretrained(rows), protocol=pickle.HIGHEST_PROTOCOL)


#: What a job's reply desk starts from (setting `reply_model`).
REPLY_MODELS = ("corpus", "empty", "off")


def starting_reply_model(kind: str = "corpus") -> Any:
    """A fresh copy of the starting text model: trained on the corpus (`corpus`, None
    without one), or `empty` (it learns from the helpdesk's feedback only), or `off`
    (None: the rules alone, nothing learnt)."""
    if kind == "off":
        return None
    if kind == "empty":
        from operators.reply_model import ReplyModel

        return ReplyModel()
    trained = _trained()
    return pickle.loads(trained) if trained is not None else None
