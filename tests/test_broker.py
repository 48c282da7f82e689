"""The embedded broker: starts on a free port, creates topics with their configs, stops."""

from confluent_kafka.admin import AdminClient, ConfigResource

from mailflow.broker import EmbeddedBroker, ensure_topics, free_port
from schemas.topics import INPUT_TOPICS, OUTPUT_TOPICS


def test_broker_starts_creates_topics_and_stops():
    broker = EmbeddedBroker().start()
    try:
        assert broker.running()
        created = ensure_topics(broker.bootstrap, partitions=2)
        assert set(created) == set(INPUT_TOPICS) | set(OUTPUT_TOPICS)
        assert ensure_topics(broker.bootstrap, partitions=2) == []  # idempotent
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        meta = admin.list_topics(timeout=10).topics
        assert len(meta["email.opens"].partitions) == 2
        config = admin.describe_configs([ConfigResource("topic", "mailflow.throttle")])
        values = next(iter(config.values())).result()
        assert values["cleanup.policy"].value == "compact"
    finally:
        broker.stop()
    assert not broker.running()


def test_port_is_free_and_usable():
    port = free_port()
    with EmbeddedBroker(port=port) as broker:
        assert broker.bootstrap == f"127.0.0.1:{port}"
