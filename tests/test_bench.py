"""`mailflow bench`: it runs with tiny numbers and reports every figure (never timed here:
the figures themselves depend on the machine)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from mailflow.bench import _descendants, cpu_seconds, human
from tests.conftest import mailflow_cmd

TINY = ["--events", "3000", "--latency-rate", "200", "--latency-seconds", "2"]
RUN_KEYS = ("seconds", "events_per_s", "processing_seconds", "processing_events_per_s",
            "cpu_us_per_event", "cpu_cores_busy", "broker_cpu_us_per_event", "idle_cpu_cores",
            "broker_idle_cpu_cores", "peak_rss_mb",
            "ratio_to_consume_parse", "ratio_to_loop", "cpu_ratio_to_loop", "clickhouse_rows")
REFERENCE_KEYS = ("reference_consume_parse_eps", "reference_loop_eps",
                  "reference_consume_parse_cpu_us_per_event", "reference_loop_cpu_us_per_event")


def _numeric(result: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        assert isinstance(result.get(key), int | float), (key, result.get(key))
        assert result[key] >= 0, key


@pytest.mark.integration
def test_bench_json_reports_references_ratios_cpu_and_memory():
    result = orjson.loads(mailflow_cmd("bench", "--json", *TINY).stdout.splitlines()[-1])
    assert result["bench"] == "end_to_end" and result["processes"] == 1
    assert result["events"] > 2500
    _numeric(result, RUN_KEYS + REFERENCE_KEYS)
    assert result["processing_events_per_s"] > 0 and result["cpu_us_per_event"] > 0
    assert len(result["peak_rss_mb_per_process"]) == 1
    assert result["peak_rss_mb"] == result["peak_rss_mb_per_process"][0] > 0


@pytest.mark.integration
def test_bench_compare_processes_runs_each_count_on_the_same_events():
    proc = mailflow_cmd("bench", "--json", "--compare-processes", "1,2", *TINY)
    result = orjson.loads(proc.stdout.splitlines()[-1])
    assert result["bench"] == "scaling"
    one, two = result["runs"]
    assert (one["processes"], two["processes"]) == (1, 2)
    _numeric(one, RUN_KEYS + REFERENCE_KEYS + ("speedup",))
    assert one["speedup"] == 1.0
    # two processes on the embedded store may be refused (then the table says why)
    if "error" not in two:
        _numeric(two, RUN_KEYS + REFERENCE_KEYS + ("speedup",))
        assert len(two["peak_rss_mb_per_process"]) == 2
    assert "speed-up" in human(result)


def test_cpu_of_a_process_tree_includes_its_children():
    child = subprocess.Popen([sys.executable, "-c", "sum(range(10**7)); input()"],
                             stdin=subprocess.PIPE)
    try:
        assert child.pid in _descendants(os.getpid())
        alone = cpu_seconds(child.pid, tree=False)
        assert cpu_seconds(os.getpid()) >= alone  # read later, and includes the child
    finally:
        child.communicate(b"\n", timeout=30)


def test_compare_processes_takes_a_list_of_counts(capsys):
    from mailflow.cli import build_parser, main

    args = build_parser().parse_args(["bench", "--compare-processes", "1,2"])
    assert args.compare_processes == (1, 2)
    for bad in ("1,x", "0,2", ""):
        with pytest.raises(SystemExit) as exit_info:
            main(["bench", "--compare-processes", bad])
        assert exit_info.value.code == 2
        assert "expected process counts" in capsys.readouterr().err


def test_long_replay_end_to_end_flags():
    from mailflow.cli import build_parser

    args = build_parser().parse_args(["bench", "--long-replay", "--end-to-end", "--days", "2",
                                      "--events", "9000", "--recipients", "300",
                                      "--label-window-s", "600"])
    assert (args.long_replay, args.end_to_end, args.days, args.events, args.recipients,
            args.label_window_s) == (True, True, 2.0, 9000, 300, 600)
    plain = build_parser().parse_args(["bench"])
    assert (plain.long_replay, plain.end_to_end, plain.snapshots, plain.events,
            plain.days, plain.label_window_s) == (False, False, False, None, 10.0, 1800)


def test_end_to_end_alone_is_refused(capsys):
    from mailflow.cli import main

    assert main(["bench", "--end-to-end"]) == 2
    assert "--end-to-end goes with --long-replay" in capsys.readouterr().err


def test_replay_streams_keep_the_size_and_refuse_empty_ones():
    from mailflow.bench import replay_streams

    shapes = replay_streams(10, 600_000, 50_000, 600_000)
    for seed, rate, seconds in shapes.values():
        assert round(rate * seconds) == 600_000 and seed in (11, 12)
    assert shapes["long"][2] == 10 * 86_400 and shapes["dense"][2] == 3600
    for bad in ((0, 10, 10, 10), (1, 0, 10, 10), (1, 10, 0, 10)):
        with pytest.raises(ValueError):
            replay_streams(*bad)


LONG_REPLAY_KEYS = ("events", "deliveries", "event_time_days", "events_per_s",
                    "events_per_s_with_start", "cpu_us_per_event", "cpu_cores_busy",
                    "broker_cpu_us_per_event", "peak_rss_mb", "clickhouse_rows",
                    "rows_per_event")


@pytest.mark.integration
def test_long_replay_end_to_end_json_has_both_runs_and_their_ratio():
    proc = mailflow_cmd("bench", "--long-replay", "--end-to-end", "--json", "--days", "0.5",
                        "--events", "2000", "--recipients", "300")
    result = orjson.loads(proc.stdout.splitlines()[-1])
    assert result["bench"] == "long_replay_end_to_end"
    for case in ("long", "dense"):
        _numeric(result[case], LONG_REPLAY_KEYS)
        assert result[case]["events"] > 1500 and result[case]["peak_rss_mb"] > 0
        assert result[case]["rows"]["mailflow.events"] == result[case]["events"]
    assert result["long"]["event_time_days"] > 0.4 > result["dense"]["event_time_days"]
    _numeric(result, ("dense_over_long", "cpu_long_over_dense"))
    assert "case" in human(result)


def test_snapshots_bench_reports_each_state_its_epochs_and_the_growth():
    script = os.path.join(os.path.dirname(__file__), "..", "bench", "snapshots.py")
    proc = subprocess.run(
        [sys.executable, script, "--recipients", "150", "--factor", "3", "--days", "0.2",
         "--epoch-events", "60", "--few-shards", "2", "--epochs", "1", "--shards", "8"],
        capture_output=True, text=True, timeout=300, check=True)
    result = orjson.loads(proc.stdout.splitlines()[-1])
    assert (result["bench"], result["shards"]) == ("snapshots", 8)
    for size in ("small", "big"):
        state, few = result[size]["state"], result[size]["epoch_few_shards"]
        assert state["shards_bytes"] > 0 and state["largest_shard_books_bytes"]
        assert 0 < few["shards_with_events"] <= 2
        assert few["shards_pickled"] >= few["shards_with_events"]
        spread = result[size]["epoch_spread"]
        _numeric(spread, ("shard_bytes", "shard_ms", "merge_bytes", "total_ms",
                          "bytes_per_pickled_shard", "ms_per_pickled_shard"))
        assert spread["shards_pickled"] >= spread["shards_with_events"] > 0
    assert result["big"]["state"]["shards_bytes"] > result["small"]["state"]["shards_bytes"]
    _numeric(result["growth"], ("state_bytes", "spread_ms", "few_shards_ms"))
