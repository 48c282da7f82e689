"""Configuration: defaults, then a TOML file, then `MAILFLOW_*` environment, then flags.

The config file is `--config PATH`, else `$MAILFLOW_CONFIG`, else
`./mailflow.toml` if present. Its keys are the field names below, e.g.

    kafka_brokers = "kafka-1:9092,kafka-2:9092"
    clickhouse_url = "http://default:secret@clickhouse:8123"
    batch_rows = 5000
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from schemas.topics import INPUT_TOPICS

ENV_PREFIX = "MAILFLOW_"


class ConfigError(ValueError):
    """Configuration that cannot work; the message says what to change."""


@dataclass
class Settings:
    kafka_brokers: str = ""  # empty: the embedded broker started by `mailflow broker`/`demo`
    clickhouse_url: str = ""  # empty: chdb://<data_dir>/clickhouse
    data_dir: str = ".mailflow"
    hash_key: str = ""
    admin_host: str = "127.0.0.1"  # the job's admin endpoint; no auth: loopback unless --insecure
    admin_port: int = 8765
    api_port: int = 8770
    ingest_port: int = 8780
    input_topics: list[str] = field(default_factory=lambda: list(INPUT_TOPICS))
    partitions: int = 3  # for topics the job creates when they are missing
    batch_rows: int = 5000  # ClickHouse insert: at most this many rows ...
    batch_ms: int = 500  # ... or rows at most this old
    kafka_batch: int = 1000  # messages per consumer poll
    fetch_wait_ms: int = 20  # longest the broker holds a fetch for new data (latency)
    order_slack_ms: int = 2000  # event-time disorder the throttle accepts without waiting
    attribution_window_s: int = 7 * 86_400  # a touch earns credit this long before a conversion
    allowed_lateness_s: int = 3600  # later events are counted as late, not in metrics_1m
    label_window_s: int = 86_400  # no genuine engagement within this: a negative label
    reset_on_drift: int = 0  # 1: a drifting model is replaced by a fresh one (old kept)
    flow_window_s: int = 7 * 86_400  # a flow's goal counts this long after entering it
    propensity_step: float = 0.05  # a propensity that moved this much is published (topic)
    stop_mailing_below: float = 0.05  # propensity below this while unsubscribe risk rises
    forecast_alert_margin: float = 0.2  # cohort's 80% upper bound this far below its trailing
    workers: int = 1  # Bytewax worker threads per process
    processes: int = 1  # cooperating processes on this machine (chDB: process 0 owns it)
    process_id: int = 0  # this process's index in `addresses` (a cluster over machines)
    addresses: str = ""  # host:port of every process, comma-separated, same order everywhere
    epoch_interval_s: float = 10.0  # also the snapshot interval for recovery
    recovery_partitions: int = 2  # fixed when the recovery store is created, like `shards`
    # Logical shards of recipient-scoped state (a stable hash of the recipient): fixed when
    # the recovery store is created; workers and processes only decide who owns which.
    shards: int = 64
    # retention in ClickHouse, days of event time (0: keep forever); see sinks/clickhouse.py
    events_ttl_days: int = 0  # events, attribution, scores
    metrics_ttl_days: int = 0  # metrics_1m, convergence, flow_recipients_1h, model_*, variants
    decisions_ttl_days: int = 0  # throttle_decisions
    profiles_ttl_days: int = 0  # send_times, recipient_profiles not updated for this long
    log_level: str = "info"
    log_format: str = "auto"  # json, text, or auto (JSON unless stderr is a terminal)
    throttle: dict[str, Any] = field(default_factory=dict)  # ThrottlePolicy overrides
    routing: dict[str, Any] = field(default_factory=dict)  # reply routing (RoutingPolicy)
    # the reply text model a job starts from: corpus (the bundled corpus), empty (learns from
    # the helpdesk's feedback only) or off (the rules alone)
    reply_model: str = "corpus"
    # control-group lift (issue 19): outcome windows after assignment (days, comma-separated
    # in the environment), the conversion goal counted ("" any), campaigns as units too
    lift_windows_days: list[str] = field(default_factory=lambda: ["7"])
    lift_goal: str = ""
    lift_campaigns: int = 1
    # policy experiments' control share (`[experiment_shares]`, name -> share), for the
    # sample-ratio test of `lift_segments`; unnamed experiments are not tested
    experiment_shares: dict[str, Any] = field(default_factory=dict)
    # decision API (`mailflow serve`)
    api_host: str = "127.0.0.1"
    api_tokens: str = ""  # comma-separated bearer tokens; empty: none (loopback or --insecure)
    # webhook receiver (`mailflow ingest`)
    ingest_host: str = "127.0.0.1"
    ingest_token: str = ""  # bearer token required on /v1/webhooks/canonical when set
    ingest_max_body: int = 5 * 1024 * 1024
    sendgrid_public_key: str = ""  # Signed Event Webhook verification key (base64)
    mailgun_signing_key: str = ""  # HTTP webhook signing key
    postmark_basic_auth: str = ""  # "user:password" configured in the webhook URL
    sparkpost_basic_auth: str = ""  # "user:password" configured on the webhook
    ses_verify_sns: int = 0  # 1: verify SNS message signatures (fetches Amazon's cert)
    ses_confirm_subscriptions: int = 0  # 1: confirm SNS subscriptions (verified, allowed topics)
    ses_topic_arns: list[str] = field(default_factory=list)  # accepted SNS topics (comma-sep.)
    # tracking links (`mailflow links`, `mailflow track`): "kid:secret[:retired-at-date],...";
    # the first key signs, every key verifies (a retired one for track_key_grace_s more)
    track_keys: str = ""
    track_base_url: str = "http://127.0.0.1:8790"  # public base URL of the tracking edge
    track_key_grace_s: int = 30 * 86_400
    track_link_ttl_s: int = 0  # signed links expire this long after signing (0: never)
    # tracking edge (`mailflow track`)
    track_host: str = "127.0.0.1"
    track_port: int = 8790
    track_privacy: int = 1  # 1: the IP leaves the edge truncated (/24, /48); 0: whole
    track_trusted_proxies: list[str] = field(default_factory=list)  # IPs/CIDRs whose
    # X-Forwarded-For is believed (the TLS proxy in front); nobody else's
    track_max_connections: int = 1024
    # per-recipient tracking per sender or "sender/campaign": "person" (default) or
    # "aggregate" (no recipient hash on opens and clicks); key "default" for all others
    tracking: dict[str, Any] = field(default_factory=dict)
    # senders or campaign ids whose links carry no recipient hash (tracking = "aggregate")
    track_aggregate: list[str] = field(default_factory=list)
    # control groups (schemas/assignment.py), keyed by hash_key: a new salt or version
    # starts new groups; transactional flows are exempt from both kinds
    holdout_share: float = 0.0  # per-flow holdout share (flows without a [holdouts] entry)
    global_control_share: float = 0.0  # no marketing at all, one draw per recipient
    holdout_salt: str = "control-1"
    holdout_version: int = 1
    holdouts: dict[str, Any] = field(default_factory=dict)  # [holdouts] flow id -> share
    transactional_flows: list[str] = field(default_factory=list)  # flow ids (comma-sep.)

    def tracking_mode(self, sender: str, campaign: str = "") -> str:
        """The mode for a sender's campaign ("person" or "aggregate"): `track_aggregate`
        (senders or campaign ids, what `mailflow links` signs by), then `[tracking]`.

        >>> s = Settings(tracking={"acme.example": "aggregate", "b.example/spring": "aggregate"},
        ...              track_aggregate=["c.example"])
        >>> s.tracking_mode("acme.example"), s.tracking_mode("b.example", "spring")
        ('aggregate', 'aggregate')
        >>> s.tracking_mode("b.example", "autumn"), s.tracking_mode("c.example", "x")
        ('person', 'aggregate')
        """
        listed = self.track_aggregate  # per request at the edge: usually empty, so cheap
        if listed and (sender in listed or (campaign and campaign in listed)):
            return "aggregate"
        table = self.tracking
        if campaign and f"{sender}/{campaign}" in table:
            return str(table[f"{sender}/{campaign}"])
        return str(table.get(sender, table.get("default", "person")))

    def provider_config(self) -> dict[str, Any]:
        """What the provider adapters read (keys and switches for verification)."""
        return {"sendgrid_public_key": self.sendgrid_public_key,
                "mailgun_signing_key": self.mailgun_signing_key,
                "postmark_basic_auth": self.postmark_basic_auth,
                "sparkpost_basic_auth": self.sparkpost_basic_auth,
                "ses_verify_sns": bool(self.ses_verify_sns),
                "ses_confirm_subscriptions": bool(self.ses_confirm_subscriptions),
                "ses_topic_arns": list(self.ses_topic_arns)}

    def link_keys(self) -> Any:
        """The tracking-link keys (schemas.links.LinkKeys); refuses to run without any."""
        from schemas.links import LinkKeys

        if not self.track_keys.strip():
            raise ConfigError("no link-signing keys: set MAILFLOW_TRACK_KEYS to "
                              "kid:secret (a secret of at least 16 bytes, e.g. from "
                              "`openssl rand -base64 32`); the first key signs, all verify")
        try:
            return LinkKeys.parse(self.track_keys, grace_s=self.track_key_grace_s)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def lift_windows(self) -> tuple[int, ...]:
        """The control-group outcome windows in days, ascending.

        >>> Settings(lift_windows_days=["30", "7"]).lift_windows()
        (7, 30)
        """
        try:
            days = tuple(sorted({int(d) for d in self.lift_windows_days}))
        except ValueError:
            raise ConfigError(f"lift_windows_days must be whole days, got "
                              f"{','.join(self.lift_windows_days)!r}") from None
        if not days or days[0] < 1 or days[-1] > 365:
            raise ConfigError("lift_windows_days must name 1 to 365 days, e.g. 7 or 7,30")
        return days

    def throttle_policy(self) -> Any:
        from operators.throttle import ThrottlePolicy

        try:
            return ThrottlePolicy.from_mapping(self.throttle)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[throttle]: {exc}") from None

    def routing_policy(self) -> Any:
        """`[routing]`: intent -> queue (`[routing.queues]`), thresholds, which actions."""
        from operators.reply_desk import RoutingPolicy

        try:
            return RoutingPolicy.from_mapping(self.routing)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[routing]: {exc}") from None

    def check_control_groups(self) -> None:
        """The control-group settings as `Assigner` takes them (ConfigError otherwise)."""
        from schemas.assignment import check_salt, check_share, check_version

        try:
            check_share(self.holdout_share, "holdout_share (MAILFLOW_HOLDOUT_SHARE)")
            check_share(self.global_control_share,
                        "global_control_share (MAILFLOW_GLOBAL_CONTROL_SHARE)")
            check_salt(self.holdout_salt, "holdout_salt (MAILFLOW_HOLDOUT_SALT)")
            check_version(self.holdout_version, "holdout_version")
            for flow, share in self.holdouts.items():
                if isinstance(share, dict):  # `shop.cart = 0.1` is a table in TOML
                    raise ValueError(f"[holdouts] {flow}: a table, not a share; quote a flow "
                                     f"id with dots (\"{flow}.x\" = 0.1)")
                check_share(share, f"[holdouts] {flow}")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def retention_days(self) -> dict[str, int]:
        """Retention setting name -> days (what `ClickHouseStore.apply_retention` takes)."""
        return {name: getattr(self, name) for name in (
            "events_ttl_days", "metrics_ttl_days", "decisions_ttl_days", "profiles_ttl_days")}

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def clickhouse_dsn(self) -> str:
        return self.clickhouse_url or f"chdb://{self.data_path / 'clickhouse'}"

    @property
    def broker_file(self) -> Path:
        """Where a running embedded broker writes its address."""
        return self.data_path / "broker.addr"

    def brokers(self) -> str:
        """Bootstrap servers: configured, else the running embedded broker's address."""
        if self.kafka_brokers:
            return self.kafka_brokers
        try:
            address = self.broker_file.read_text().strip()
        except OSError:
            address = ""
        if not address:
            raise ConfigError(
                "no Kafka brokers configured: set MAILFLOW_KAFKA_BROKERS (or --brokers), "
                "or start the embedded one with `mailflow broker` in another terminal")
        return address

    def validate(self) -> Settings:
        if self.batch_rows < 1 or self.batch_ms < 1 or self.kafka_batch < 1:
            raise ConfigError("batch_rows, batch_ms and kafka_batch must be >= 1")
        if self.workers < 1:
            raise ConfigError("workers must be >= 1")
        if not 1 <= self.shards <= 4096:
            raise ConfigError(f"shards must be 1..4096, got {self.shards}")
        for name in ("admin_port", "api_port", "ingest_port", "track_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{name} must be a TCP port, got {port}")
        for name in ("events_ttl_days", "metrics_ttl_days", "decisions_ttl_days",
                     "profiles_ttl_days"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (0: keep forever)")
        if not self.input_topics:
            raise ConfigError("input_topics must name at least one topic")
        self.throttle_policy()
        self.routing_policy()
        self.lift_windows()
        for name, share in self.experiment_shares.items():
            if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1:
                raise ConfigError(f"[experiment_shares] {name}: a control share between 0 "
                                  f"and 1, got {share!r}")
        for key, mode in self.tracking.items():
            if mode not in ("person", "aggregate"):
                raise ConfigError(f"[tracking] {key}: must be \"person\" or \"aggregate\", "
                                  f"got {mode!r}")
        self.check_control_groups()
        if self.reply_model not in ("corpus", "empty", "off"):
            raise ConfigError(f"reply_model must be corpus, empty or off, got "
                              f"{self.reply_model!r}")
        return self


def _coerce(name: str, raw: Any, kind: Any) -> Any:
    try:
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind == "dict[str, Any]":
            if not isinstance(raw, dict):
                raise TypeError("expected a table")
            return dict(raw)
        if kind in ("list[str]",) or kind == list[str]:
            if isinstance(raw, str):
                return [t.strip() for t in raw.split(",") if t.strip()]
            return [str(t) for t in raw]
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot use {raw!r} ({exc})") from None


def load_settings(config_file: str | None = None, overrides: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Settings from file, environment and flags (`overrides`, None values ignored)."""
    env = os.environ if environ is None else environ
    settings = Settings()
    kinds = {f.name: f.type for f in fields(Settings)}
    path = config_file or env.get(f"{ENV_PREFIX}CONFIG") or (
        "mailflow.toml" if Path("mailflow.toml").exists() else None)
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        unknown = sorted(set(data) - set(kinds))
        if unknown:
            raise ConfigError(f"unknown keys in {path}: {', '.join(unknown)}")
        for name, value in data.items():
            setattr(settings, name, _coerce(name, value, kinds[name]))
    for name, kind in kinds.items():
        if kind == "dict[str, Any]":
            continue  # tables come from the config file only
        value = env.get(ENV_PREFIX + name.upper())
        if value is not None and value != "":
            setattr(settings, name, _coerce(ENV_PREFIX + name.upper(), value, kind))
    for name, value in (overrides or {}).items():
        if value is not None:
            setattr(settings, name, _coerce(name, value, kinds[name]))
    return settings.validate()
