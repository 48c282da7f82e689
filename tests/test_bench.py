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
