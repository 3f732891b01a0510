"""Property-based requests generated from the service's own OpenAPI schema.

Schemathesis draws valid and invalid requests for every operation in
/openapi.json and sends them over HTTP to a real service. No request may
get a 5xx, every response must match its documented status and schema, and a
422 must name the field it rejects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from ledger import Ledger, LedgerConfig
from ledger.service import create_app
from ledger.tokens import create_token
from tests.ledger._service_harness import annotation, bearer, threaded_server

# Enough examples per operation and mode to reach the error paths, bounded
# so that both databases together take about a minute on two cores.
EXAMPLES = 60


@dataclass
class Target:
    base_url: str
    ledger: Ledger
    token: str


@pytest.fixture
def target(db_url: str, key_dir: Path) -> Iterator[Target]:
    """A service with five entries, on SQLite and on PostgreSQL.

    PostgreSQL rejects some values SQLite stores (NUL in text, integers
    beyond 32 bits in INTEGER columns), so both must respond 4xx alike.
    """
    config = LedgerConfig(key_dir=key_dir)
    ledger = Ledger.create(db_url, origin="test.example/ledger", config=config)
    ledger.append_many([annotation(number) for number in range(5)])
    token = create_token(ledger, name="schemathesis", role="admin")[1]
    with threaded_server(create_app(db_url, config)) as base_url:
        yield Target(base_url, ledger, token)
    ledger.close()


# NOTE: schemathesis 4.32's pytest integration (``schema.parametrize()`` on a
# ``from_fixture`` schema) fails under pytest 9.2 with "'Function' object has
# no attribute '_nodeid'", so each operation's Hypothesis strategy is run
# here directly (``APIOperation.as_strategy``).
# Every operation, and whether it takes input that can be made invalid.
OPERATIONS = [
    ("POST", "/v1/entries", True),
    ("GET", "/v1/entries/{seq}", True),
    ("GET", "/v1/checkpoint", True),
    ("GET", "/v1/proofs/inclusion", True),
    ("GET", "/v1/proofs/consistency", True),
    ("GET", "/v1/verify", False),
    ("POST", "/v1/tokens", True),
    ("GET", "/v1/tokens", False),
    ("DELETE", "/v1/tokens/{token_id}", True),
    ("POST", "/v1/erasures", True),
    ("GET", "/healthz", False),
]
CASES = [
    (method, path, mode)
    for method, path, has_input in OPERATIONS
    for mode in GenerationMode
    if has_input or mode.is_positive
]
# A body over the size limit gets 413 before anything else is checked, so
# 413 also counts as rejecting invalid data.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [
                    *("400", "401", "403", "404", "405", "406", "409"),
                    *("413", "415", "422", "428", "429", "5xx"),
                ]
            }
        }
    }
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _auth_for(case: schemathesis.Case, token: str) -> dict[str, str]:
    """Return the admin token's header, unless the case's headers are invalid.

    In negative mode schemathesis may make the Authorization header the
    invalid part, by a wrong value or by leaving it out; adding the token
    would turn the case into a valid one. Such cases go out as generated,
    and a 401 is the rejection they expect.
    """
    headers_negated = any(
        location.value == "header" and info.mode.is_negative
        for location, info in case.meta.components.items()
    )
    return {} if headers_negated else bearer(token)


def _sent_as_generated(case: schemathesis.Case) -> bool:
    """Tell whether the request on the wire still carries the invalid value.

    A query parameter drawn as an empty array is left out of the URL, so the
    request that is sent can be valid; it must not count as invalid data
    that the service accepted.
    """
    return not any(value == [] for value in (case.query or {}).values())


def rejection_names_field(ctx, response, case) -> bool | None:
    """A 422 response lists at least one problem, each naming a field."""
    if response.status_code != 422:
        return None
    body = response.json()
    assert isinstance(body.get("error"), str)
    assert isinstance(body.get("message"), str) and body["message"]
    assert body["errors"], "a 422 response must list the problems"
    for problem in body["errors"]:
        assert isinstance(problem["field"], str) and problem["field"]
        assert isinstance(problem["problem"], str) and problem["problem"]
    return True


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=str)
def test_generated_requests_get_no_5xx(
    target: Target, method: str, path: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(
        f"{target.base_url}/openapi.json", config=CONFIG
    )
    operation = schema[path][method]
    checks = CHECKS + ([negative_data_rejection] if mode.is_negative else [])

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: schemathesis.Case) -> None:
        size_before = target.ledger.size
        response = case.call(headers=_auth_for(case, target.token), timeout=30)
        case.validate_response(
            response,
            checks=checks if _sent_as_generated(case) else CHECKS,
            additional_checks=[rejection_names_field],
        )
        if response.status_code >= 400:
            assert target.ledger.size == size_before

    run()


def test_schema_covers_every_route(target: Target) -> None:
    paths = httpx.get(f"{target.base_url}/openapi.json").json()["paths"]
    documented = {
        (method.upper(), path) for path, item in paths.items() for method in item
    }
    assert documented == {(method, path) for method, path, _ in OPERATIONS}
