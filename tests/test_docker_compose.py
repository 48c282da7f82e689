"""The production compose, Dockerfile and Grafana provisioning, checked without a Docker engine."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import orjson
import yaml

from flows.settings import Settings, load_settings
from mailflow.exposure import is_loopback, missing
from sinks.clickhouse import ClickHouseStore

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_services_images_and_health_checks():
    services = compose()["services"]
    assert set(services) == {"kafka", "clickhouse", "job", "ingest", "api", "track", "grafana"}
    for name, svc in services.items():
        assert "healthcheck" in svc, name
        assert svc.get("restart") == "unless-stopped", name
        image = svc["image"]
        assert re.fullmatch(r"[\w./-]+:\d[\w.-]*", image), f"{name}: pin the image ({image})"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert "clickhouse-data:/var/lib/clickhouse" in services["clickhouse"]["volumes"]
    assert services["job"]["build"]["dockerfile"] == "docker/Dockerfile"


def test_ports_and_environment():
    services = compose()["services"]
    assert "8780:8780" in services["ingest"]["ports"]
    assert "8770:8770" in services["api"]["ports"]
    assert "8790:8790" in services["track"]["ports"]
    assert "3000:3000" in services["grafana"]["ports"]
    known = {f"MAILFLOW_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    for name in ("job", "ingest", "api", "track"):
        env = services[name]["environment"]
        assert env["MAILFLOW_KAFKA_BROKERS"] == "kafka:9092"
        assert env["MAILFLOW_CLICKHOUSE_URL"].startswith("http://")
        assert "MAILFLOW_HASH_KEY" in env
        unknown = {k for k in env if k.startswith("MAILFLOW_")} - known
        assert not unknown, f"{name}: settings the program does not read: {unknown}"
    assert services["job"]["stop_grace_period"] == "60s"  # SIGTERM drains and flushes


def test_dockerfile_installs_every_package():
    text = (DOCKER / "Dockerfile").read_text()
    for package in ("mailflow", "flows", "operators", "schemas", "sinks"):
        assert f"COPY {package} ./{package}" in text
    assert "pip install --no-cache-dir ." in text and 'ENTRYPOINT ["mailflow"]' in text


def test_grafana_dashboard_queries_run_against_the_schema(tmp_path):
    datasource = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/clickhouse.yaml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashboard = orjson.loads((DOCKER / "grafana/dashboards/mailflow.json").read_bytes())
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("throttle", "convergence", "negative", "auc"):
        assert topic in titles
    store = ClickHouseStore(f"chdb://{tmp_path / 'clickhouse'}")
    try:
        store.migrate()
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid
                sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 >= now() - INTERVAL 1 DAY",
                             target["rawSql"])
                store.query(sql)  # raises if a column or table does not exist
    finally:
        store.close()


# every secret a published server needs, by the compose variable that carries it
SECRETS = {"ingest": {"MAILFLOW_INGEST_TOKEN", "MAILFLOW_SENDGRID_PUBLIC_KEY",
                      "MAILFLOW_MAILGUN_SIGNING_KEY", "MAILFLOW_POSTMARK_BASIC_AUTH",
                      "MAILFLOW_SPARKPOST_BASIC_AUTH", "MAILFLOW_SES_TOPIC_ARNS"},
           "api": {"MAILFLOW_API_TOKENS"},
           "track": {"MAILFLOW_TRACK_KEYS", "MAILFLOW_TRACK_BASE_URL"}}
_REQUIRED = re.compile(r"\$\{(\w+):\?[^}]+\}")


def _interpolate(value: str) -> str:
    """What compose makes of a value when every required variable is set to a dummy."""
    return _REQUIRED.sub(lambda m: f"dummy-{m.group(1).lower()}", str(value))


def test_published_servers_require_every_secret():
    """Fail closed: a missing secret stops `docker compose up` (`${VAR:?message}`), never
    becomes an empty value that turns verification off."""
    services = compose()["services"]
    text = (DOCKER / "compose.yaml").read_text()
    assert not re.search(r"\$\{MAILFLOW_\w+:-", text), "a MAILFLOW_ secret with a default"
    for name, secrets in SECRETS.items():
        env = services[name]["environment"]
        for variable in secrets:
            assert _REQUIRED.fullmatch(str(env[variable])), f"{name}: {variable} not required"
            assert _REQUIRED.fullmatch(str(env[variable])).group(1) == variable


def test_the_compose_configuration_passes_the_servers_own_start_up_check():
    services = compose()["services"]
    for name, server, host_key in (("ingest", "ingest", "MAILFLOW_INGEST_HOST"),
                                   ("api", "api", "MAILFLOW_API_HOST")):
        environ = {k: _interpolate(v) for k, v in services[name]["environment"].items()}
        assert not is_loopback(environ[host_key])  # published: so the check applies
        assert missing(server, load_settings(environ=environ)) == [], name
    job = {k: _interpolate(v) for k, v in services["job"]["environment"].items()}
    assert is_loopback(load_settings(environ=job).admin_host)  # no auth: stays inside
