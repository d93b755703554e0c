"""The operation table is the one list of operations: every entry is served, documented in
/openapi.json, accepted by rules and the journal, and answers as its schemas say."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from mock_server import operations
from mock_server.app import routes
from mock_server.contract import load_schema, response_errors
from mock_server.fixtures.plugin import BriaMock
from mock_server.image_factory import make_image
from mock_server.openapi import document

OPERATIONS = operations.OPERATIONS
IDS = [op.name for op in OPERATIONS]


def image() -> str:
    return make_image("PNG", "RGB", (24, 16)).base64


@pytest.mark.parametrize("op", OPERATIONS, ids=IDS)
def test_every_operation_is_served_sync_and_async_as_its_schemas_say(
    op: operations.Operation, bria_client: httpx.Client
) -> None:
    sync = bria_client.post(op.path, json={**op.example_request(image()), "sync": True})
    accepted = bria_client.post(op.path, json=op.example_request(image()))

    assert accepted.status_code == 202, accepted.text
    assert response_errors("accepted.202", accepted.json()) == []
    if op.sync_allowed:
        assert sync.status_code == 200, sync.text
        assert response_errors(op.result_schema, sync.json()) == []
    else:  # async only: sync: true is answered 202, and the job's result has the sync answer's shape
        assert sync.status_code == 202, sync.text
        done = poll(bria_client, sync.json()["request_id"])
        assert response_errors(op.result_schema, {"result": done["result"], "request_id": done["request_id"]}) == []


def poll(client: httpx.Client, request_id: str) -> dict[str, Any]:
    """The status body once the job has ended."""
    for _ in range(20):
        body: dict[str, Any] = client.get(f"/v2/status/{request_id}").json()
        if body["status"] != "IN_PROGRESS":
            return body
    raise AssertionError(f"job {request_id} still in progress")


@pytest.mark.parametrize("op", OPERATIONS, ids=IDS)
def test_every_operation_is_documented_in_openapi_with_its_schemas(op: operations.Operation) -> None:
    documented = document()["paths"][op.path][op.method.lower()]

    assert documented["operationId"] == op.name
    request = documented["requestBody"]["content"]["application/json"]
    assert request["schema"]["$ref"].endswith(f"/{document_title(op.request_schema)}")
    assert response_errors(op.request_schema, request["example"]) == []
    assert {"200", "202", "400", "401", "415", "422", "429", "460", "5XX"} <= set(documented["responses"])


def document_title(schema: str) -> str:
    return str(load_schema(schema)["title"])


@pytest.mark.parametrize("op", OPERATIONS, ids=IDS)
def test_every_operation_is_a_rule_endpoint_and_a_journal_endpoint(
    op: operations.Operation, bria_client: httpx.Client, bria_inprocess: BriaMock
) -> None:
    added = bria_client.post("/bria-mock/rules", json={"endpoint": op.name, "action": {"type": "error", "status": 503}})

    answer = bria_client.post(op.path, json=op.example_request(image()))

    assert added.status_code == 201, added.text
    assert answer.status_code == 503
    assert [entry.endpoint for entry in bria_inprocess.calls(path=op.path)] == [op.name]


def test_the_routes_are_the_table_plus_the_status_service_results_samples_and_controls() -> None:
    api = [(route.method, route.path) for route in routes() if route.path.startswith("/v2/")]

    assert api == [*((op.method, op.path) for op in OPERATIONS), ("GET", "/v2/status/{request_id}")]
    assert set(document()["paths"]) == {path for _, path in api}


def test_endpoint_names_are_unique_and_every_operation_is_rate_limited() -> None:
    names = operations.endpoint_names()

    assert len(names) == len(set(names))
    assert operations.rate_limited() == {*IDS, operations.STATUS}


@pytest.mark.parametrize("failed_status", ["ERROR", "FAILED"])
def test_a_failed_job_reports_the_configured_status_in_its_schema(failed_status: str) -> None:
    from mock_server.app import create_app
    from mock_server.config import Settings
    from mock_server.fixtures.inprocess import SyncASGITransport

    app = create_app(Settings(failed_status=failed_status))
    headers = {"api_token": "bria-mock-job-error"}  # a trigger token: its jobs end in ERROR
    with httpx.Client(transport=SyncASGITransport(app), base_url="http://testserver", headers=headers) as client:
        accepted = client.post(OPERATIONS[0].path, json=OPERATIONS[0].example_request(image())).json()
        polled = [client.get(accepted["status_url"]).json() for _ in range(2)][-1]

    # FAILED is checked against the other reading (schemas/readings/): the status service documents ERROR.
    schema = "status.error" if failed_status == "ERROR" else "readings/status.failed"
    assert polled["status"] == failed_status
    assert response_errors(schema, polled) == []


def test_output_moderation_reads_the_edited_image_of_every_operation(bria_client: httpx.Client) -> None:
    from mock_server import samples

    unsafe = "http://testserver/samples/unsafe-output.jpg"
    assert samples.sample("unsafe-output.jpg") is not None
    for op in OPERATIONS:
        if (
            not op.sync_allowed
            or "visual_output_content_moderation" not in load_schema(op.request_schema)["properties"]
        ):
            continue
        body = {**op.example_request(unsafe), "visual_output_content_moderation": True, "sync": True}
        answer = bria_client.post(op.path, json=body)
        assert answer.status_code == 422, (op.name, answer.text)


def test_the_contract_suite_covers_every_operation(pytester: pytest.Pytester) -> None:
    import mock_server.contract_tests as suite

    directory = Path(suite.__file__).parent
    result = pytester.runpytest_inprocess("--collect-only", "-q", "-p", "no:cacheprovider", "-n", "0", str(directory))

    collected = "\n".join(result.outlines)
    for op in OPERATIONS:
        for test in ("test_an_async_call_answers_202", "test_the_fake_accepts_every_valid_request"):
            assert re.search(rf"{test}\w*\[{op.name}\]", collected), f"{test} does not cover {op.name}"
