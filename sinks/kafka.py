"""Kafka output: producer settings shared by every topic mailflow writes."""

from __future__ import annotations


def producer_config(**extra: str) -> dict[str, str]:
    """Durable, batched producing: wait for all in-sync replicas, compress, linger briefly."""
    config = {
        "acks": "all",
        "enable.idempotence": "true",
        "linger.ms": "20",
        "compression.type": "lz4",
        "message.max.bytes": str(2 * 1024 * 1024),
    }
    config.update(extra)
    return config
