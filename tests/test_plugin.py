"""The pytest plugin, exercised as a user would: generated test files run by ``pytester``."""

from __future__ import annotations

from pathlib import Path

import pytest

from mock_server.fixtures.plugin import BriaMock
from mock_server.image_factory import BROKEN

USER_TESTS = """
import asyncio

import httpx
import pytest
from bria_client import BriaSyncClient

RMBG = "/v2/image/edit/remove_background"


def test_socket_fixture(bria_mock):
    response = httpx.post(bria_mock.url(RMBG), json={"image": bria_mock.url("/samples/subject.jpg"), "sync": True},
                          headers={"api_token": bria_mock.token})
    assert response.status_code == 200
    bria_mock.assert_called(endpoint="remove_background", times=1)


def test_official_sdk_through_bria_env(bria_env):
    with BriaSyncClient() as client:
        done = client.run(endpoint="image/edit/remove_background",
                          payload={"image": bria_env.url("/samples/subject.jpg")}, raise_for_status=True)
    assert done.result.image_url.startswith(bria_env.base_url)


def test_in_process_client(bria_client, bria_inprocess):
    accepted = bria_client.post(RMBG, json={"image": "http://testserver/samples/subject.jpg"})
    assert accepted.status_code == 202
    status_url = accepted.json()["status_url"]
    assert [bria_client.get(status_url).json()["status"] for _ in range(2)] == ["IN_PROGRESS", "COMPLETED"]
    bria_inprocess.assert_called(endpoint="status", times=2)


def test_async_in_process_client(bria_async_client):
    async def call():
        async with bria_async_client as client:
            return (await client.get("/v2/status/nope")).status_code
    assert asyncio.run(call()) == 404


def test_image_factory_urls(bria_mock, bria_image):
    image = bria_image("JPEG", "CMYK", (40, 30))
    response = httpx.post(bria_mock.url(RMBG), json={"image": image.url, "sync": True}, headers={"api_token": "t"})
    assert response.status_code == 200


@pytest.mark.bria_fault(endpoint="remove_background", action={"type": "error", "status": 503}, times=1)
def test_fault_marker(bria_mock):
    codes = [httpx.post(bria_mock.url(RMBG), json={"image": bria_mock.url("/samples/subject.jpg")},
                        headers={"api_token": "t"}).status_code for _ in range(2)]
    assert codes == [503, 202]


@pytest.mark.bria_fault({"endpoint": "status", "action": {"type": "error", "status": 500}})
def test_fault_marker_in_process(bria_client):
    assert bria_client.get("/v2/status/x").status_code == 500
"""


def test_every_fixture_and_marker_in_a_user_test_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=7)


def test_a_declared_rule_that_never_fires_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.bria_fault(id="unused", endpoint="status", action={"type": "error", "status": 503})
        def test_forgets_to_poll(bria_mock):
            pass

        @pytest.mark.bria_strict(False)
        @pytest.mark.bria_fault(endpoint="status", action={"type": "error", "status": 503})
        def test_allowed(bria_mock):
            pass
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2, errors=1)  # the test body passed; its teardown failed it
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_forgets_to_poll*", "*bria_fault rule(s) never fired: unused*"]
    )


def test_no_strict_option_turns_strictness_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.bria_fault(endpoint="status", action={"type": "error", "status": 503})
        def test_unused(bria_mock):
            pass
        """
    )

    pytester.runpytest("-p", "no:cacheprovider", "--bria-mock-no-strict").assert_outcomes(passed=1)


def test_an_error_inside_the_fake_is_raised_in_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx

        def test_breaks_the_fake(bria_mock, monkeypatch):
            async def broken(request_id, token):
                raise ZeroDivisionError("inside the fake")
            monkeypatch.setattr(bria_mock.backend, "status", broken)
            response = httpx.get(bria_mock.url("/v2/status/x"), headers={"api_token": "t"})
            assert response.status_code == 500  # the client sees the envelope ...

        def test_next_test_is_clean(bria_mock):
            pass
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2, errors=1)  # ... and the test hears of the crash at teardown
    result.stdout.fnmatch_lines(["*bria-mock raised while serving this test*", "*ZeroDivisionError: inside the fake*"])


def test_settings_from_the_ini_file_and_the_command_line(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nbria_mock_settings =\n    progress_polls=3\n")
    pytester.makepyfile(
        """
        import httpx

        def test_progression(bria_mock):
            headers = {"api_token": "t"}
            url = httpx.post(bria_mock.url("/v2/image/edit/remove_background"), headers=headers,
                             json={"image": bria_mock.url("/samples/subject.jpg")}).json()["status_url"]
            states = [httpx.get(url, headers=headers).json()["status"] for _ in range(4)]
            assert states == ["IN_PROGRESS"] * 3 + ["COMPLETED"]
            assert bria_mock.backend.limiter.limit == 10
        """
    )

    pytester.runpytest("-p", "no:cacheprovider", "--bria-mock-setting", "rate_limit=free").assert_outcomes(passed=1)


def test_parallel_workers_each_get_their_own_fake(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx, pytest

        @pytest.mark.parametrize("n", range(6))
        def test_isolated(bria_mock, n):
            httpx.get(bria_mock.url("/v2/status/x"), headers={"api_token": "t"})
            assert len(bria_mock.calls()) == 1  # reset before each test, nobody else's traffic
        """
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")

    result.assert_outcomes(passed=6)


@pytest.mark.parametrize("broken", BROKEN)
def test_broken_images_are_refused_by_the_fake(bria_mock: BriaMock, broken: str) -> None:
    import httpx

    image = bria_mock.image("JPEG", "RGB", (64, 64), broken=broken)

    response = httpx.post(
        bria_mock.url("/v2/image/edit/remove_background"), json={"image": image.base64}, headers={"api_token": "t"}
    )

    assert response.status_code == 415


def test_the_readme_example_runs_as_written(pytester: pytest.Pytester) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Testing with pytest") :]
    example = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    pytester.makepyfile(test_readme=example)

    # In a subprocess: the official SDK imports numpy, which cannot be imported twice in one process.
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
