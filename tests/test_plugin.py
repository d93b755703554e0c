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
        return (await bria_async_client.get("/v2/status/nope")).status_code
    assert asyncio.run(call()) == 404


def test_async_in_process_client_in_a_with_block(bria_async_client):
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

    result.assert_outcomes(passed=8)


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
        [
            "*ERROR at teardown of test_forgets_to_poll*",
            "bria_fault rule(s) never fired (strict mode):",
            "  unused, declared at test_a_declared_rule_that_never_fires_fails_the_test.py:3, matched 0 call(s)*",
            '    {"action": {"status": 503, "type": "error"}, "endpoint": "status", "id": "unused"}',
            "*@pytest.mark.bria_strict(False)*--bria-mock-no-strict*",
        ]
    )


def test_a_strict_failure_names_where_each_rule_was_declared(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_where="""
        import pytest

        pytestmark = pytest.mark.bria_fault(id="module", endpoint="status", action={"type": "error", "status": 503})


        @pytest.mark.bria_fault(id="class", endpoint="status", action={"type": "error", "status": 502})
        class TestGroup:
            @pytest.mark.bria_fault(id="upper", endpoint="remove_background", action={"type": "error", "status": 500})
            @pytest.mark.bria_fault(id="lower", endpoint="replace_background", action={"type": "error", "status": 500})
            def test_idle(self, bria_mock):
                pass
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "  module, declared at test_where.py:3, *",
            "  class, declared at test_where.py:6, *",
            "  upper, declared at test_where.py:8, *",
            "  lower, declared at test_where.py:9, *",
        ]
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

        def test_breaks_the_fake(bria_mock, bria_mock_server, monkeypatch):
            async def broken(request_id, token):
                raise ZeroDivisionError("inside the fake")
            monkeypatch.setattr(bria_mock_server.backend, "status", broken)
            response = httpx.get(bria_mock.url("/v2/status/x"), headers={"api_token": "t"})
            assert response.status_code == 500  # the client sees the envelope ...

        def test_next_test_is_clean(bria_mock):
            pass
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2, errors=1)  # ... and the test hears of the crash at teardown
    result.stdout.fnmatch_lines(["*bria-mock raised while serving this test*", "*ZeroDivisionError: inside the fake*"])


BREAKS_THE_FAKE = """
import httpx
import pytest


def break_status(backend, monkeypatch):
    async def broken(request_id, token):
        raise ZeroDivisionError("inside the fake")

    monkeypatch.setattr(backend, "status", broken)


@pytest.fixture
def broken_socket_fake(bria_mock, bria_mock_server, monkeypatch):
    break_status(bria_mock_server.backend, monkeypatch)
    return bria_mock


@pytest.fixture
def broken_in_process_fake(bria_app, monkeypatch):
    break_status(bria_app.state.backend, monkeypatch)
"""


def test_a_crash_fails_the_test_even_with_the_strict_check_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        BREAKS_THE_FAKE
        + """
@pytest.mark.bria_strict(False)
def test_strict_off_for_this_test(broken_socket_fake):
    assert httpx.get(broken_socket_fake.url("/v2/status/x"), headers={"api_token": "t"}).status_code == 500
"""
    )

    result = pytester.runpytest("-p", "no:cacheprovider", "--bria-mock-no-strict")

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_strict_off_for_this_test*",
            "bria-mock raised while serving this test:",
            "*ZeroDivisionError: inside the fake*",
            "*@pytest.mark.bria_allow_crashes*",
        ]
    )


def test_a_test_that_breaks_the_fake_on_purpose_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        BREAKS_THE_FAKE
        + """
@pytest.mark.bria_allow_crashes
def test_over_a_socket(broken_socket_fake):
    assert httpx.get(broken_socket_fake.url("/v2/status/x"), headers={"api_token": "t"}).status_code == 500
    assert [type(crash).__name__ for crash in broken_socket_fake.crashes()] == ["ZeroDivisionError"]


@pytest.mark.bria_allow_crashes
def test_in_process_the_client_gets_the_500_too(broken_in_process_fake, bria_client, bria_inprocess):
    assert bria_client.get("/v2/status/x").status_code == 500
    assert len(bria_inprocess.crashes()) == 1
"""
    )

    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_an_in_process_crash_is_raised_in_the_test_and_reported_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        BREAKS_THE_FAKE
        + """
def test_raised_at_the_call(broken_in_process_fake, bria_client):
    bria_client.get("/v2/status/x")


def test_caught_by_the_test(broken_in_process_fake, bria_client):
    with pytest.raises(ZeroDivisionError):
        bria_client.get("/v2/status/x")
"""
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    # The first fails at the call only (its crash is not repeated at teardown); the second
    # swallowed the crash, so it hears of it at teardown.
    result.assert_outcomes(failed=1, passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_caught_by_the_test*", "*FAILED*test_raised_at_the_call*"])
    # Counted in the reports, not the short summary (whose lines CI=true leaves uncut).
    reports = result.stdout.str().split("short test summary info")[0]
    assert reports.count("bria-mock raised while serving this test") == 1


def test_markers_used_wrongly_are_errors_at_setup(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_misuse="""
        import pytest

        RULE = {"endpoint": "status", "action": {"type": "error", "status": 503}}

        @pytest.mark.bria_strict("false")
        def test_a_string(bria_mock):
            pass

        @pytest.mark.bria_strict(False, bogus=1)
        def test_an_unknown_keyword(bria_mock):
            pass

        @pytest.mark.bria_strict(True, False)
        def test_two_values(bria_mock):
            pass

        @pytest.mark.bria_fault(RULE)
        def test_no_fake():
            pass

        @pytest.mark.bria_allow_crashes(True)
        def test_allow_crashes_with_an_argument(bria_mock):
            pass

        @pytest.mark.bria_fault({"endpont": "status", "action": {"type": "error", "status": 503}})
        def test_a_misspelt_rule(bria_mock):
            pass

        @pytest.mark.bria_strict(enabled=False)
        @pytest.mark.bria_fault(RULE)
        def test_the_keyword_form(bria_client):
            pass
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(errors=6, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_a_string*",
            "@pytest.mark.bria_strict takes True or False, got bria_strict('false') (a str)",
            "*ERROR at setup of test_an_unknown_keyword*",
            "@pytest.mark.bria_strict takes only `enabled`, got bria_strict(False, bogus=1)",
            "*ERROR at setup of test_two_values*",
            "@pytest.mark.bria_strict takes one value, True or False, got bria_strict(True, False)",
            "*ERROR at setup of test_no_fake*",
            "@pytest.mark.bria_fault needs a bria-mock fixture, and this test uses none: ask for bria_mock, *",
            "*ERROR at setup of test_allow_crashes_with_an_argument*",
            "@pytest.mark.bria_allow_crashes takes no arguments, got bria_allow_crashes(True)",
            "*ERROR at setup of test_a_misspelt_rule*",
            "@pytest.mark.bria_fault at test_misuse.py:25: rule: *endpont*",
        ]
    )


def test_a_connection_fault_in_process_is_refused_at_setup_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        RESET = {"endpoint": "status", "action": {"type": "connection", "fault": "reset"}}

        @pytest.mark.bria_fault(RESET)
        def test_in_process(bria_client):
            pass

        def test_added_in_the_test(bria_inprocess):
            with pytest.raises(ValueError, match="need a real socket"):
                bria_inprocess.add_rule(RESET)

        @pytest.mark.bria_strict(False)
        @pytest.mark.bria_fault(RESET)
        def test_over_a_socket_it_is_accepted(bria_mock):
            assert [rule.action["fault"] for rule in bria_mock.rules()] == ["reset"]
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(errors=1, passed=2)
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_in_process*", "*connection faults*need a real socket*use the bria_mock fixture*"]
    )
    assert "bria-mock raised" not in result.stdout.str()
    assert "During handling of the above exception" not in result.stdout.str()


def test_one_handle_per_in_process_fake_and_every_client_closed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        made = {}

        def test_one_handle(bria_app, bria_inprocess, bria_client, request):
            assert request.getfixturevalue("_bria_in_process").mock is bria_inprocess
            bria_client.get("/v2/status/x")
            bria_inprocess.assert_called(endpoint="status", times=1)
            made["sync"] = bria_client

        def test_the_async_client_is_open(bria_async_client):
            async def call():
                return (await bria_async_client.get("/v2/status/x")).status_code
            assert asyncio.run(call()) == 404
            made["async"] = bria_async_client

        def test_both_were_closed_after_their_test():
            assert made["sync"].is_closed
            assert made["async"].is_closed
        """
    )

    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)


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
            assert bria_mock.rate_limit() == 10
        """
    )

    pytester.runpytest("-p", "no:cacheprovider", "--bria-mock-setting", "rate_limit=free").assert_outcomes(passed=1)


# A child pytest with bria-mock's plugin alone: the other installed plugins (schemathesis, hypothesis)
# take seconds to import in every child and are not what these tests are about.
ONLY_OUR_PLUGINS = ("--disable-plugin-autoload", "-p", "mock_server.fixtures.plugin", "-p", "no:cacheprovider")


@pytest.mark.subprocess
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

    result = pytester.runpytest_subprocess(*ONLY_OUR_PLUGINS, "-p", "xdist.plugin", "-n", "2")

    result.assert_outcomes(passed=6)


@pytest.mark.parametrize("broken", BROKEN)
def test_broken_images_are_refused_by_the_fake(bria_mock: BriaMock, broken: str) -> None:
    import httpx

    image = bria_mock.image("JPEG", "RGB", (64, 64), broken=broken)

    response = httpx.post(
        bria_mock.url("/v2/image/edit/remove_background"), json={"image": image.base64}, headers={"api_token": "t"}
    )

    assert response.status_code == 415


@pytest.mark.subprocess
def test_the_readme_example_runs_as_written(pytester: pytest.Pytester) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Testing with pytest") :]
    example = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    pytester.makepyfile(test_readme=example)

    # In a subprocess: the official SDK imports numpy, which cannot be imported twice in one process.
    pytester.runpytest_subprocess(*ONLY_OUR_PLUGINS).assert_outcomes(passed=1)


def test_the_docs_example_runs_as_written(pytester: pytest.Pytester) -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "pytest-plugin.md").read_text()
    section = page[page.index("## An example") :]
    start = section.index("```python\n") + len("```python\n")
    pytester.makepyfile(test_docs_example=section[start : section.index("```\n", start)])

    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_the_handle_offers_methods_not_internals(bria_mock: BriaMock) -> None:
    import httpx

    assert [name for name in ("backend", "jobs", "journal", "clock", "server") if hasattr(bria_mock, name)] == []
    rule = bria_mock.add_rule(endpoint="status", action={"type": "error", "status": 503}, times=1)
    headers = {"api_token": bria_mock.token}
    codes = [httpx.get(bria_mock.url("/v2/status/x"), headers=headers).status_code for _ in range(2)]
    httpx.post(
        bria_mock.url("/v2/image/edit/remove_background"),
        headers=headers,
        json={"image": bria_mock.url("/samples/subject.jpg")},
    )
    before = bria_mock.now()
    bria_mock.advance(5)

    assert codes == [503, 404]
    assert [(listed.id, listed.fired) for listed in bria_mock.rules()] == [(rule.id, 1)]
    assert [entry.status for entry in bria_mock.calls(endpoint="status")] == [503, 404]
    assert bria_mock.now() - before >= 5
    assert bria_mock.job_count() == 1
    bria_mock.reset()
    assert (bria_mock.rules(), bria_mock.calls(), bria_mock.job_count()) == ([], [], 0)


def test_the_rate_limit_is_read_and_set_through_the_handle(bria_mock: BriaMock) -> None:
    try:
        bria_mock.set_rate_limit(7)
        assert bria_mock.rate_limit() == 7
    finally:
        bria_mock.set_rate_limit(None)  # a reset puts it back to the configured one: leave the session's fake as found


def test_a_misspelt_criterion_is_refused_naming_the_closest(bria_mock: BriaMock) -> None:
    valid = "endpoint, method, status, token, path, body"

    # On an empty journal: nothing to match, yet the misspelling must not pass as "not called".
    with pytest.raises(TypeError, match=rf"unknown criterion 'endpiont'; did you mean 'endpoint'\? \(valid: {valid}"):
        bria_mock.assert_not_called(endpiont="remove_background")
    import httpx

    httpx.get(bria_mock.url("/v2/status/x"), headers={"api_token": "t"})  # and on a journal with a call in it
    with pytest.raises(TypeError, match="did you mean 'endpoint'"):
        bria_mock.assert_called(endpiont="remove_background")
    with pytest.raises(TypeError, match="did you mean 'times'"):
        bria_mock.assert_called(endpoint="status", time=2)
    with pytest.raises(TypeError, match="did you mean 'status'"):
        bria_mock.calls(statsu=200)
    with pytest.raises(TypeError, match="did you mean 'method'"):
        bria_mock.assert_called_in_order({"methd": "GET"})


def test_matching_a_recorded_call_on_an_unknown_criterion_is_a_type_error(bria_mock: BriaMock) -> None:
    import httpx

    from mock_server.ids import namespace_id
    from mock_server.journal import matches

    httpx.get(bria_mock.url("/v2/status/x"), headers={"api_token": "t"})
    (entry,) = bria_mock.calls()

    with pytest.raises(TypeError, match="unknown criterion 'request_id'"):
        matches(entry, {"request_id": "x"}, namespace_id)


@pytest.mark.subprocess
def test_importing_the_plugin_stays_cheap() -> None:
    import subprocess
    import sys

    heavy = ("starlette", "uvicorn", "httpx", "PIL", "jsonschema", "fastjsonschema", "mock_server.app")
    probe = f"import sys, mock_server.fixtures.plugin; print([m for m in {heavy!r} if m in sys.modules])"

    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
