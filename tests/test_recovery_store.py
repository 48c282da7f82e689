"""The recovery store's layout: created once, checked at every start, shared by a cluster."""

from __future__ import annotations

import json

import pytest

from mailflow.config import ConfigError, Settings
from mailflow.job import cluster, prepare_recovery, store_owner
from mailflow.recovery import LAYOUT_FILE, RecoveryLayout, RecoveryStore

LAYOUT = RecoveryLayout(shards=64, recovery_partitions=4)


def test_a_new_store_records_its_layout_and_a_later_start_checks_it(tmp_path):
    store = RecoveryStore(tmp_path / "recovery")
    assert store.prepare(LAYOUT) == "created"
    assert store.partitions() == [0, 1, 2, 3]
    assert json.loads((store.path / LAYOUT_FILE).read_text()) == {
        "shards": 64, "recovery_partitions": 4, "state_format": 3}
    assert store.prepare(LAYOUT) == "checked"


@pytest.mark.parametrize("changed", [RecoveryLayout(shards=128, recovery_partitions=4),
                                     RecoveryLayout(shards=64, recovery_partitions=8)])
def test_a_changed_shard_or_partition_count_is_refused_and_says_what_to_do(tmp_path, changed):
    store = RecoveryStore(tmp_path / "recovery")
    store.prepare(LAYOUT)
    with pytest.raises(ConfigError) as refused:
        store.prepare(changed)
    message = str(refused.value)
    name = "shards" if changed.shards != LAYOUT.shards else "recovery_partitions"
    kept = getattr(LAYOUT, name)
    assert f"keep {name} = {kept}" in message and "fresh recovery directory" in message
    assert str(store.path) in message
    # nothing was changed by the refused start
    assert store.prepare(LAYOUT) == "checked" and store.partitions() == [0, 1, 2, 3]


def test_machines_of_a_cluster_each_create_their_share(tmp_path):
    machines = [RecoveryStore(tmp_path / f"machine{i}" / "recovery") for i in range(3)]
    for i, store in enumerate(machines):
        assert store.prepare(LAYOUT, process=i, processes=3) == "created"
    assert [m.partitions() for m in machines] == [[0, 3], [1], [2]]
    # a restart of each finds its share and the same layout
    for i, store in enumerate(machines):
        assert store.prepare(LAYOUT, process=i, processes=3) == "checked"


def test_processes_sharing_a_directory_complete_it_whoever_starts_first(tmp_path):
    shared = RecoveryStore(tmp_path / "recovery")
    assert shared.prepare(LAYOUT, process=1, processes=2) == "created"
    assert shared.partitions() == [1, 3]
    assert shared.prepare(LAYOUT, process=0, processes=2) == "checked"
    assert shared.partitions() == [0, 1, 2, 3]


def test_a_store_made_before_layouts_were_recorded_is_adopted(tmp_path):
    from bytewax.recovery import init_db_dir

    path = tmp_path / "recovery"
    path.mkdir()
    init_db_dir(path, 2)
    store = RecoveryStore(path)
    assert store.prepare(RecoveryLayout(shards=64, recovery_partitions=2)) == "adopted"
    with pytest.raises(ConfigError, match="keep shards = 64"):
        store.prepare(RecoveryLayout(shards=16, recovery_partitions=2))


def test_a_single_process_refuses_a_store_with_missing_partitions(tmp_path):
    store = RecoveryStore(tmp_path / "recovery")
    store.prepare(LAYOUT)
    (store.path / "part-2.sqlite3").unlink()
    with pytest.raises(ConfigError, match=r"partitions \[2\] are missing"):
        store.prepare(LAYOUT)


def test_prepare_recovery_takes_the_settings_and_the_cluster_shape(tmp_path):
    settings = Settings(data_dir=str(tmp_path), shards=32, recovery_partitions=4,
                        addresses="127.0.0.1:2101,127.0.0.1:2102", process_id=1)
    path = prepare_recovery(settings)
    assert RecoveryStore(path).partitions() == [1, 3]
    settings.shards = 64
    with pytest.raises(ConfigError, match="keep shards = 32"):
        prepare_recovery(settings)


def test_only_process_0_of_a_cluster_owns_an_embedded_store():
    two = "10.0.0.1:2101,10.0.0.2:2101"
    assert store_owner(Settings()) is None
    assert store_owner(Settings(addresses=two, process_id=0)) is None
    assert "process 0" in store_owner(Settings(addresses=two, process_id=1))
    # every process of a cluster writes to a ClickHouse server
    assert store_owner(Settings(addresses=two, process_id=1,
                                clickhouse_url="http://ch:8123")) is None
    with pytest.raises(ConfigError, match="not an index"):
        cluster(Settings(addresses=two, process_id=2))


@pytest.fixture
def owned_elsewhere():
    from sinks.clickhouse import embedded_store_owner

    embedded_store_owner("process 0 at http://127.0.0.1:8765/sql")
    try:
        yield
    finally:
        embedded_store_owner(None)


def test_a_process_that_does_not_own_the_embedded_store_never_opens_it(tmp_path,
                                                                       owned_elsewhere):
    import urllib.error
    import urllib.request

    from mailflow.admin import AdminServer
    from mailflow.stats import JobStats
    from sinks.clickhouse import (
        ClickHouseSink,
        ClickHouseStore,
        ReadOnlyQueries,
        StoreElsewhere,
    )

    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    with pytest.raises(StoreElsewhere, match="process 0"):
        ClickHouseStore(dsn)
    assert not (tmp_path / "clickhouse").exists()
    # the sink lists no table here: Bytewax routes the rows to the owner's workers
    assert ClickHouseSink(dsn).list_parts() == []
    assert ClickHouseSink("http://ch:8123").list_parts() == ClickHouseSink("http://ch:8123").tables
    queries = ReadOnlyQueries(dsn)
    server = AdminServer(JobStats(), queries.query, info={}, port=0).start()
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/sql",
                                         data=b"SELECT 1", method="POST")
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        assert answer.value.code == 503
        assert b"SQL is served by process 0 at http://127.0.0.1:8765/sql" in answer.value.read()
    finally:
        server.stop()
        queries.close()
    assert not (tmp_path / "clickhouse").exists()


def test_a_store_of_an_older_state_format_is_refused_with_what_to_do(tmp_path):
    """Snapshots made when every shard held its own models cannot be resumed now."""
    store = RecoveryStore(tmp_path / "recovery")
    store.prepare(LAYOUT)
    recorded = json.loads(store.layout_file.read_text())
    assert recorded["state_format"] == 3
    del recorded["state_format"]  # as written before formats were recorded
    store.layout_file.write_text(json.dumps(recorded))
    with pytest.raises(ConfigError, match="state format 1.*fresh recovery directory"):
        store.prepare(LAYOUT)
    recorded["state_format"] = 2  # the models in one step, the propensity still learnt
    store.layout_file.write_text(json.dumps(recorded))
    with pytest.raises(ConfigError, match="state format 2.*format 3 .the convergence "
                                          "propensity counts how journeys move"):
        store.prepare(LAYOUT)
