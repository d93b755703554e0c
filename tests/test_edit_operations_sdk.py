"""The official SDK (bria-client) against the fake over a real socket: ``run``, ``submit`` and ``poll``
for every operation of the table, by the endpoint string a client passes."""

from __future__ import annotations

import pytest
from bria_client import BriaSyncClient

from mock_server import operations
from mock_server.fixtures.plugin import BriaMock
from mock_server.image_factory import make_image

OPERATIONS = operations.OPERATIONS


def endpoint(op: operations.Operation) -> str:
    """The endpoint string the SDK takes: the path after ``/v2/``."""
    return op.path.removeprefix("/v2/")


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_run_submit_and_poll_complete_for_every_operation(bria_env: BriaMock, op: operations.Operation) -> None:
    payload = op.example_request(make_image("PNG", "RGB", (48, 32)).base64)
    with BriaSyncClient() as client:
        submitted = client.submit(endpoint=endpoint(op), payload=payload, raise_for_status=True)
        done = client.poll(submitted, interval=0.05, timeout=10)
        ran = client.run(endpoint=endpoint(op), payload=payload, raise_for_status=True)
        if not op.sync_allowed:  # the SDK's run gets the 202 of an async-only operation: poll it too
            ran = client.poll(ran, interval=0.05, timeout=10)

    assert done.status == "COMPLETED"
    assert ran.status == "COMPLETED"
