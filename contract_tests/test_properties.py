"""Properties over generated requests: valid ones drawn from the request schemas, invalid mutations
of them, sync against async, and the life of a job."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mock_server import operations
from mock_server.contract_tests.client import IN_PROGRESS, BriaApi
from mock_server.contract_tests.profiles import contract_settings
from mock_server.contract_tests.strategies import InvalidCase, invalid_requests, valid_requests

EDIT = tuple(operations.names())  # every operation of the table
SYNC = tuple(op.name for op in operations.OPERATIONS if op.sync_allowed)
REPOLLS = 2


def result_keys(body: dict[str, Any]) -> set[str]:
    return set(body["result"])


@pytest.mark.fake_only("a live service may refuse by moderation or load; the fake must accept every valid request")
@pytest.mark.parametrize("operation", EDIT)
def test_the_fake_accepts_every_valid_request(bria_api: BriaApi, operation: str) -> None:
    @contract_settings(spread=len(EDIT))
    @given(body=valid_requests(operation))
    def accepted(body: dict[str, Any]) -> None:
        response = bria_api.submit(operation, body)

        assert response.status_code == (200 if body.get("sync") else 202), response.text

    accepted()


@pytest.mark.risky
@pytest.mark.parametrize("operation", EDIT)
def test_an_invalid_request_is_a_4xx_envelope_naming_the_field(bria_api: BriaApi, operation: str) -> None:
    @contract_settings(spread=len(EDIT))
    @given(case=invalid_requests(operation))
    def refused(case: InvalidCase) -> None:
        response = bria_api.submit(operation, case.body)

        # The fake answers 400 to every schema violation; a live service may choose another 4xx.
        assert response.status_code == 400 or (bria_api.target.live and 400 <= response.status_code < 500), (
            response.text
        )
        details = response.json()["error"]["details"]
        assert all(field in details for field in case.fields), (
            f"{case.mutation}: {details!r} names none of {case.fields}"
        )

    refused()


@pytest.mark.parametrize("operation", SYNC)
def test_sync_and_async_answers_agree(bria_api: BriaApi, operation: str) -> None:
    @contract_settings(cost=3, spread=len(SYNC))
    @given(body=valid_requests(operation), seed=st.integers(0, 2**31 - 1))
    def agree(body: dict[str, Any], seed: int) -> None:
        body = {**body, "seed": seed}  # the same seed: the same image, so the results are comparable
        synchronous = bria_api.submit(operation, {**body, "sync": True})
        accepted = bria_api.submit(operation, {**body, "sync": False})
        assert (synchronous.status_code, accepted.status_code) == (200, 202), (synchronous.text, accepted.text)

        final = bria_api.poll(accepted.json()["status_url"])[-1]

        assert final["status"] == "COMPLETED", final
        assert result_keys(final) == result_keys(synchronous.json())
        if "image_url" in final["result"]:
            sync_image = bria_api.download(synchronous.json()["result"]["image_url"])
            async_image = bria_api.download(final["result"]["image_url"])
            assert sync_image.properties == async_image.properties

    agree()


@pytest.mark.parametrize("operation", EDIT)
def test_an_accepted_job_is_pollable_to_a_terminal_state_that_never_changes(bria_api: BriaApi, operation: str) -> None:
    @contract_settings(cost=2, spread=len(EDIT))
    @given(body=valid_requests(operation))
    def pollable(body: dict[str, Any]) -> None:
        accepted = bria_api.submit(operation, {**body, "sync": False})
        assert accepted.status_code == 202, accepted.text

        answers = bria_api.poll(accepted.json()["status_url"])
        again = [bria_api.status(accepted.json()["status_url"]).json() for _ in range(REPOLLS)]

        assert all(answer["status"] == IN_PROGRESS for answer in answers[:-1])
        assert all(answer["request_id"] == accepted.json()["request_id"] for answer in answers)
        # Statuses, not whole bodies: a live service may sign its image links afresh on every poll.
        assert [answer["status"] for answer in again] == [answers[-1]["status"]] * REPOLLS, "a terminal status changed"

    pollable()
