"""Configuration precedence: defaults < file < MAILFLOW_* environment < flags."""

import pytest

from flows.settings import ConfigError, load_settings


def test_defaults_follow_the_design(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert (s.admin_port, s.api_port, s.ingest_port) == (8765, 8770, 8780)
    assert s.clickhouse_dsn == f"chdb://{tmp_path / '.mailflow' / 'clickhouse'}"
    assert (s.batch_rows, s.batch_ms) == (5000, 500)


def test_file_then_environment_then_flags(tmp_path):
    cfg = tmp_path / "m.toml"
    cfg.write_text('kafka_brokers = "file:9092"\nbatch_rows = 10\nadmin_port = 1\n'
                   'input_topics = ["a", "b"]\n')
    env = {"MAILFLOW_BATCH_ROWS": "20", "MAILFLOW_ADMIN_PORT": "2",
           "MAILFLOW_CLICKHOUSE_URL": "http://u:p@ch:8123"}
    s = load_settings(str(cfg), {"admin_port": 3, "data_dir": None}, environ=env)
    assert s.kafka_brokers == "file:9092" and s.brokers() == "file:9092"
    assert s.batch_rows == 20 and s.admin_port == 3
    assert s.input_topics == ["a", "b"]
    assert s.clickhouse_dsn == "http://u:p@ch:8123"
    env_topics = load_settings(environ={"MAILFLOW_INPUT_TOPICS": "x, y"})
    assert env_topics.input_topics == ["x", "y"]


@pytest.mark.parametrize("content, message", [
    ("nonsense = 1", "unknown keys"),
    ("batch_rows = 'many'", "cannot use"),
    ("batch_rows = 0", "must be >= 1"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_configuration_is_explained(tmp_path, content, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(str(cfg), environ={})


def test_missing_brokers_say_how_to_get_one(tmp_path):
    s = load_settings(environ={"MAILFLOW_DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="mailflow broker"):
        s.brokers()
    (tmp_path / "broker.addr").write_text("127.0.0.1:1234\n")
    assert s.brokers() == "127.0.0.1:1234"


def test_throttle_thresholds_come_from_the_config_file(tmp_path):
    cfg = tmp_path / "m.toml"
    cfg.write_text("[throttle]\ncomplaint_pause = 0.005\npause_base_s = 1800\n")
    policy = load_settings(str(cfg), environ={}).throttle_policy()
    assert (policy.complaint_pause, policy.pause_base_s) == (0.005, 1800)
    assert policy.complaint_slow == 0.001  # the rest keep their defaults
    cfg.write_text("[throttle]\ncomplaint_pasue = 0.005\n")
    with pytest.raises(ConfigError, match="complaint_pasue"):
        load_settings(str(cfg), environ={})
