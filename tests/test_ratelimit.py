"""Rate limiting as state: buckets per token and endpoint, plan presets, the virtual clock."""

from __future__ import annotations

import httpx
import pytest

from mock_server.ratelimit import PLANS, per_minute

RMBG = "/v2/image/edit/remove_background"


def test_the_free_plan_allows_ten_a_minute_then_429_with_retry_after(make_server, client_for) -> None:  # type: ignore[no-untyped-def]
    server = make_server(rate_limit="free")
    api = client_for(server.base_url)

    codes = [api.get("/v2/status/x").status_code for _ in range(11)]

    assert codes == [404] * 10 + [429]
    limited = api.get("/v2/status/x")
    assert int(limited.headers["retry-after"]) >= 1
    server.backend.clock.advance(60)
    assert api.get("/v2/status/x").status_code == 404


def test_buckets_are_per_token_and_per_endpoint(make_server, client_for) -> None:  # type: ignore[no-untyped-def]
    server = make_server(rate_limit="2")
    alice, bob = client_for(server.base_url, token="alice"), client_for(server.base_url, token="bob")

    assert [alice.get("/v2/status/x").status_code for _ in range(3)] == [404, 404, 429]
    assert bob.get("/v2/status/x").status_code == 404
    assert alice.post(RMBG, json={}).status_code == 400  # another endpoint, another bucket


def test_the_limit_can_be_changed_at_run_time(make_server, client_for) -> None:  # type: ignore[no-untyped-def]
    server = make_server()
    api = client_for(server.base_url)
    assert httpx.post(f"{server.base_url}/bria-mock/rate-limit", json={"per_minute": 1}).json() == {"per_minute": 1}

    assert [api.get("/v2/status/x").status_code for _ in range(2)] == [404, 429]
    httpx.post(f"{server.base_url}/bria-mock/rate-limit", json={"plan": "off"})
    assert api.get("/v2/status/x").status_code == 404


@pytest.mark.parametrize(
    ("value", "limit"), [("free", 10), ("payg", 60), ("Enterprise", 1000), ("25", 25), ("off", None), (None, None)]
)
def test_plan_presets(value: str | None, limit: int | None) -> None:
    assert per_minute(value) == limit
    assert PLANS == {"free": 10, "payg": 60, "enterprise": 1000}


def test_a_full_reset_puts_back_the_configured_limit(make_server, client_for) -> None:  # type: ignore[no-untyped-def]
    server = make_server(rate_limit="3")
    api = client_for(server.base_url)
    httpx.post(f"{server.base_url}/bria-mock/rate-limit", json={"per_minute": 1})
    assert [api.get("/v2/status/x").status_code for _ in range(2)] == [404, 429]

    httpx.post(f"{server.base_url}/bria-mock/reset", json={})

    state = httpx.get(f"{server.base_url}/bria-mock/state").json()
    assert state["rate_limit"]["per_minute"] == 3
    assert [api.get("/v2/status/x").status_code for _ in range(4)] == [404, 404, 404, 429]


def test_a_full_reset_turns_a_limit_set_at_run_time_off_again(make_server, client_for) -> None:  # type: ignore[no-untyped-def]
    server = make_server()
    api = client_for(server.base_url)
    httpx.post(f"{server.base_url}/bria-mock/rate-limit", json={"plan": "free"})

    httpx.post(f"{server.base_url}/bria-mock/reset", json={})

    assert httpx.get(f"{server.base_url}/bria-mock/state").json()["rate_limit"]["per_minute"] is None
    assert {api.get("/v2/status/x").status_code for _ in range(12)} == {404}


def test_a_namespaced_reset_keeps_the_shared_limit(make_server, client_for) -> None:  # type: ignore[no-untyped-def]
    server = make_server()
    httpx.post(f"{server.base_url}/bria-mock/rate-limit", json={"per_minute": 5})

    httpx.post(f"{server.base_url}/bria-mock/reset", json={}, headers={"api_token": "worker-1"})

    assert httpx.get(f"{server.base_url}/bria-mock/state").json()["rate_limit"]["per_minute"] == 5


def test_a_rate_limit_set_in_one_test_does_not_leak_into_the_next(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx

        def status_codes(bria_mock, n):
            url = bria_mock.url("/v2/status/x")
            return [httpx.get(url, headers={"api_token": "t"}).status_code for _ in range(n)]

        def test_sets_a_limit(bria_mock):
            bria_mock.set_rate_limit(2)
            assert status_codes(bria_mock, 3) == [404, 404, 429]

        def test_runs_after_it(bria_mock):
            assert status_codes(bria_mock, 3) == [404, 404, 404]
        """
    )

    pytester.runpytest("-p", "no:xdist", "-p", "no:randomly").assert_outcomes(passed=2)
