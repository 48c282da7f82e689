"""Property-based tests of the decision API generated from its own OpenAPI document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from mailflow.api import OPENAPI, ApiServer, DecisionApi
from mailflow.broker import EmbeddedBroker, ensure_topics
from schemas.hashing import DEV_HASH_KEY
from sinks.client import ThrottleClient

pytestmark = pytest.mark.integration

schema = schemathesis.openapi.from_dict(OPENAPI).exclude(path="/v1/decisions/stream")


@pytest.fixture(scope="module")
def base_url():
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, partitions=1)
        client = ThrottleClient(broker.bootstrap, hash_key=DEV_HASH_KEY).start()
        assert client.wait_ready(30)
        server = ApiServer(DecisionApi(client, tokens=[]), port=0).start()
        yield f"http://127.0.0.1:{server.port}"
        server.stop()


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_its_schema(case, base_url):
    """No 5xx, documented status codes, responses valid against their schemas."""
    case.call_and_validate(base_url=base_url)


def test_the_recipient_pattern_admits_nothing_the_server_strips():
    """Schemathesis found "\\x1d…@\\x1d": valid by the old pattern, but Python's strip()
    removes \\x1c-\\x1f and \\x85, leaving an empty domain."""
    import re

    path = OPENAPI["paths"]["/v1/suppressions/{recipient}"]["get"]
    pattern = re.compile(path["parameters"][0]["schema"]["pattern"])

    def admits(text: str) -> bool:  # JSON Schema's `$` is the end (Python's: before a \n)
        m = pattern.match(text)
        return m is not None and m.end() == len(text)

    for ch in (chr(c) for c in range(0x110000) if chr(c).isspace()):
        assert not admits(f"a{ch}@b.example") and not admits(f"a@b.example{ch}")
    assert admits("a@b.example") and admits("0" * 32)
