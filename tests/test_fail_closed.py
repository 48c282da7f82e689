"""Servers bound beyond loopback refuse to start without their secrets (exit 2), unless
--insecure, which warns at start and every hour."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest

from flows.settings import load_settings
from mailflow.cli import main
from mailflow.exposure import Reminder, check_exposure, is_loopback, missing

INGEST_SECRETS = {
    "MAILFLOW_INGEST_TOKEN": "tok-ingest-1", "MAILFLOW_SENDGRID_PUBLIC_KEY": "sg-key-2",
    "MAILFLOW_MAILGUN_SIGNING_KEY": "mg-key-3", "MAILFLOW_POSTMARK_BASIC_AUTH": "pm:pw-4",
    "MAILFLOW_SPARKPOST_BASIC_AUTH": "sp:pw-5", "MAILFLOW_SES_VERIFY_SNS": "1",
    "MAILFLOW_SES_TOPIC_ARNS": "arn:aws:sns:eu-west-1:123456789012:ses-events"}


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("MAILFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no mailflow.toml
    monkeypatch.setenv("MAILFLOW_KAFKA_BROKERS", "127.0.0.1:1")
    return monkeypatch


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("", False), ("10.1.2.3", False),
    ("no-such-host.invalid", False)])
def test_what_counts_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_serve_refuses_a_public_bind_without_tokens(env, capsys):
    env.setenv("MAILFLOW_API_HOST", "0.0.0.0")
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "MAILFLOW_API_TOKENS" in err and "MAILFLOW_API_HOST=0.0.0.0" in err
    assert "--insecure" in err


def test_ingest_names_every_missing_secret_at_once(env, capsys):
    env.setenv("MAILFLOW_INGEST_HOST", "0.0.0.0")
    env.setenv("MAILFLOW_MAILGUN_SIGNING_KEY", "mg-key-3")  # one of them is there
    assert main(["ingest", "--port", "0"]) == 2
    err = capsys.readouterr().err
    for name in ("MAILFLOW_INGEST_TOKEN", "MAILFLOW_SENDGRID_PUBLIC_KEY",
                 "MAILFLOW_POSTMARK_BASIC_AUTH", "MAILFLOW_SPARKPOST_BASIC_AUTH",
                 "MAILFLOW_SES_VERIFY_SNS=1", "MAILFLOW_SES_TOPIC_ARNS"):
        assert name in err
    assert "MAILGUN" not in err and "mg-key-3" not in err  # set: not named, never echoed


def test_ses_needs_both_verification_and_topic_arns(env):
    for name, value in INGEST_SECRETS.items():
        env.setenv(name, value)
    assert missing("ingest", load_settings()) == []
    env.delenv("MAILFLOW_SES_TOPIC_ARNS")
    assert missing("ingest", load_settings()) == ["MAILFLOW_SES_TOPIC_ARNS"]
    env.setenv("MAILFLOW_SES_TOPIC_ARNS", " , ")
    env.setenv("MAILFLOW_SES_VERIFY_SNS", "0")
    assert missing("ingest", load_settings()) == ["MAILFLOW_SES_VERIFY_SNS=1",
                                                  "MAILFLOW_SES_TOPIC_ARNS"]


def test_the_job_keeps_its_admin_endpoint_on_loopback(env, capsys):
    env.setenv("MAILFLOW_ADMIN_HOST", "0.0.0.0")
    env.setenv("MAILFLOW_HASH_KEY", "k" * 40)
    assert main(["run", "--admin-port", "0"]) == 2
    assert "MAILFLOW_ADMIN_HOST=0.0.0.0" in capsys.readouterr().err


def test_loopback_and_complete_configurations_start(env):
    settings = load_settings()
    assert check_exposure("api", "127.0.0.1", settings, insecure=False) is None
    assert check_exposure("ingest", "localhost", settings, insecure=False) is None
    env.setenv("MAILFLOW_API_TOKENS", "a,b")
    for name, value in INGEST_SECRETS.items():
        env.setenv(name, value)
    settings = load_settings()
    assert check_exposure("api", "0.0.0.0", settings, insecure=False) is None
    assert check_exposure("ingest", "0.0.0.0", settings, insecure=False) is None


def test_insecure_warns_at_start_and_again(env, caplog):
    caplog.set_level(logging.WARNING)
    reminder = check_exposure("api", "0.0.0.0", load_settings(), insecure=True,
                              remind_every_s=0.01)
    try:
        assert reminder is not None
        deadline = time.monotonic() + 30
        while reminder.warnings < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reminder.warnings >= 3
    finally:
        reminder.stop()
    warnings = [r.getMessage() for r in caplog.records if "INSECURE" in r.getMessage()]
    assert len(warnings) >= 3 and "MAILFLOW_API_TOKENS" in warnings[0]


def test_the_reminder_defaults_to_hourly():
    reminder = Reminder("x", 3600)
    assert reminder.every_s == 3600


def test_serve_insecure_starts_with_a_warning(tmp_path):
    """The real verb, in its own process: it starts, says it is insecure, and stops."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}
    env.update(MAILFLOW_API_HOST="0.0.0.0", MAILFLOW_KAFKA_BROKERS="127.0.0.1:1",
               MAILFLOW_LOG_FORMAT="text")
    proc = subprocess.Popen([sys.executable, "-m", "mailflow", "serve", "--insecure",
                             "--port", "0"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # printed once listening
        assert line.startswith("mailflow serve on http://0.0.0.0:")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "INSECURE" in err and "MAILFLOW_API_TOKENS" in err


def test_an_unauthenticated_loopback_server_says_so(env, caplog):
    caplog.set_level(logging.INFO)
    assert check_exposure("ingest", "127.0.0.1", load_settings(), insecure=False) is None
    assert "MAILFLOW_SENDGRID_PUBLIC_KEY" in caplog.text
