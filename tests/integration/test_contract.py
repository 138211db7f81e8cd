"""The API's contract, checked by schemathesis against the live service's OpenAPI document:
for every operation, generated requests (fitting the schema and deliberately not fitting it)
never get a 5xx, and every answer conforms to the response schema documented for its status.

Bounded for CI: a fixed number of derandomized examples per operation and mode. (The
operations are listed at collection from the app's own document; the requests and the checks
use the document the live service serves.)"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from serve_app.ingress import api
from tests.integration.conftest import Service

pytestmark = pytest.mark.serve

EXAMPLES_PER_OPERATION = 20
OPERATIONS = [
    f"{method.upper()} {path}"
    for path, methods in api.openapi()["paths"].items()
    for method in methods
]  # fmt: skip


@pytest.fixture(scope="module")
def live_schema(service: Service, client: httpx.Client) -> schemathesis.BaseSchema:
    assert client.get("/health/ready").status_code == 200
    return schemathesis.openapi.from_url(f"{service.base_url}/openapi.json")


def test_every_operation_is_checked(live_schema: schemathesis.BaseSchema) -> None:
    served = {op.ok().label for op in live_schema.get_all_operations()}
    assert served == set(OPERATIONS)
    assert len(OPERATIONS) >= 15


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_keeps_its_contract(
    label: str, live_schema: schemathesis.BaseSchema, service: Service
) -> None:
    operation = live_schema.find_operation_by_label(label)
    assert operation is not None, label
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def keeps_contract(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=service.base_url,
            checks=[not_a_server_error, response_schema_conformance],
            timeout=60,
        )

    keeps_contract()
