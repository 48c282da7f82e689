"""`mailflow replay`: provider exports and JSONL through the ingest path."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from mailflow.generator import TrafficGenerator
from mailflow.replay import detect
from schemas.topics import INPUT_TOPICS
from tests.conftest import consume_all, mailflow_cmd

SAMPLES = Path(__file__).parent / "samples"


@pytest.mark.parametrize("provider", ["sendgrid", "sparkpost", "mailgun", "postmark", "ses"])
def test_formats_are_detected_from_their_samples(provider):
    sample = orjson.loads(next(iter(sorted((SAMPLES / provider).glob("*.json")))).read_bytes())
    first = sample[0] if isinstance(sample, list) else sample
    assert detect(first) == provider


def test_detect_refuses_what_it_cannot_tell():
    with pytest.raises(ValueError, match="--provider"):
        detect({"hello": "world"})


@pytest.mark.integration
def test_replay_jsonl_and_a_provider_export(broker, tmp_path):
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(tmp_path),
           "MAILFLOW_HASH_KEY": "replay-test-key"}
    events = list(TrafficGenerator(seed=2, start=1_795_000_000.0).events(100, 60))
    jsonl = tmp_path / "history.jsonl"
    jsonl.write_bytes(b"\n".join(e.value for e in events) + b"\n")
    # a SendGrid export: the sample arrays of every event kind, concatenated
    items = [item for f in sorted((SAMPLES / "sendgrid").glob("*.json"))
             for item in orjson.loads(f.read_bytes())]
    export = tmp_path / "sendgrid-export.json"
    export.write_bytes(orjson.dumps(items))

    out = mailflow_cmd("replay", str(jsonl), env=env)
    assert f"{len(events):,} events accepted" in out.stderr
    out = mailflow_cmd("replay", str(export), "--sender", "news.acme.example", env=env)
    accepted = int(out.stderr.split(" events accepted")[0].split()[-1].replace(",", ""))
    assert accepted > 0

    produced = sum(len(consume_all(broker.bootstrap, t)) for t in INPUT_TOPICS)
    assert produced == len(events) + accepted

    missing = mailflow_cmd("replay", str(tmp_path / "nope.json"), env=env, check=False)
    assert missing.returncode == 2 and "no such file" in missing.stderr

    # raw addresses never reach Kafka: without the hash key (or --dev) replay refuses
    keyless = mailflow_cmd("replay", str(jsonl), env={**env, "MAILFLOW_HASH_KEY": ""},
                           check=False)
    assert keyless.returncode == 2 and "MAILFLOW_HASH_KEY" in keyless.stderr
