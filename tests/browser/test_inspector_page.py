"""The inspector in a real browser (headless Chromium) against the fake over a real socket: jobs
submitted with the official SDK are listed with a result image the browser decoded, a malformed
rule shows the schema's error, reset empties the lists, and 10,000 entries load in under two seconds.

The browser is the OS's ``chromium``, driven through the OS's ``chromedriver`` by Selenium: nothing
is downloaded at run time. Where either is missing the whole module skips, with one reason that
says what to install: pytest's ``-ra`` summary (in ``addopts``) prints it once, at the end.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from bria_client import BriaSyncClient

from mock_server.config import Settings
from mock_server.fixtures.plugin import BriaMock
from mock_server.image_factory import make_image
from mock_server.server import ServerThread

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

    from mock_server.fixtures.receiver import WebhookReceiver

pytestmark = pytest.mark.browser

# Debian names the browser chromium; other systems name it otherwise.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
MISSING = (
    "the inspector's browser tests need chromium and chromedriver: run scripts/install-os-packages as root "
    "(it runs apt-get install chromium chromium-driver)"
)
WAIT_SECONDS = 15
RMBG = "image/edit/remove_background"
Wait = Callable[..., Any]
ROWS = "#exchange-rows tr.exchange"


def _browser_path() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


BROWSER, DRIVER = _browser_path(), shutil.which("chromedriver")
if BROWSER is None or DRIVER is None:
    pytest.skip(MISSING, allow_module_level=True)


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    """One headless Chromium for the module (starting one takes about a second)."""
    browser, driver = BROWSER, DRIVER
    assert browser is not None and driver is not None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()


@pytest.fixture
def browser(chromium: WebDriver) -> Iterator[WebDriver]:
    """The module's Chromium for one test; it leaves the page afterwards, so that the page stops polling."""
    yield chromium
    chromium.get("about:blank")


@pytest.fixture
def wait_for(browser: WebDriver) -> Callable[..., object]:
    """``wait_for(condition, message)``: wait until ``condition(browser)`` is truthy, and return it."""
    from selenium.webdriver.support.ui import WebDriverWait

    def wait(condition: Callable[[WebDriver], object], message: str = "") -> object:
        return WebDriverWait(browser, WAIT_SECONDS, poll_frequency=0.05).until(condition, message)

    return wait


def open_inspector(browser: WebDriver, wait_for: Wait, base_url: str) -> None:
    browser.get(f"{base_url}/bria-mock/ui")
    wait_for(lambda b: b.execute_script("return document.body.dataset.refreshes"), "the page never refreshed")


def count(browser: WebDriver, selector: str) -> int:
    return len(browser.find_elements("css selector", selector))


def decoded_width(browser: WebDriver, selector: str) -> int:
    """The natural width of the first image matching ``selector`` once the browser decoded it, else 0."""
    script = "const i = document.querySelector(arguments[0]); return i && i.complete ? i.naturalWidth : 0;"
    width: int = browser.execute_script(script, selector)
    return width


def submit_with_the_sdk(bria_env: BriaMock) -> str:
    """One sync run (a result image) and one async submission, with the official SDK; the run's request id."""
    image = make_image(size=(48, 32)).base64
    with BriaSyncClient() as client:
        ran = client.run(endpoint=RMBG, payload={"image": image}, raise_for_status=True)
        client.submit(endpoint=RMBG, payload={"image": image}, raise_for_status=True)
    request_id: str = ran.request_id
    return request_id


def test_the_page_lists_sdk_jobs_with_their_input_and_result_images(
    browser: WebDriver, wait_for: Wait, bria_env: BriaMock
) -> None:
    request_id = submit_with_the_sdk(bria_env)
    open_inspector(browser, wait_for, bria_env.base_url)

    wait_for(lambda b: count(b, ROWS) == 2 and count(b, "#job-list li.job") == 2, "the page did not list both")
    card = f'#job-list li[data-request-id="{request_id}"]'
    wait_for(lambda b: decoded_width(b, f"{card} img.thumb") > 0, "the job's result image was not decoded")
    sync_row = browser.find_element("xpath", "//tbody[@id='exchange-rows']/tr[td[@class='status status-2xx'][.='200']]")
    sync_row.find_element("css selector", "button.toggle").click()
    detail = "tr.detail .images"
    wait_for(lambda b: decoded_width(b, f"{detail} img[alt='Input image']") > 0, "the input image was not decoded")
    wait_for(lambda b: decoded_width(b, f"{detail} img[alt^='Result image']") > 0, "the result was not decoded")

    assert decoded_width(browser, f"{detail} img[alt='Input image']") == 48
    assert "remove_background" in browser.find_element("css selector", ROWS).text
    # The exchange's job link goes to its card in the Jobs panel (which reads with the admin token if set).
    wait_for(lambda b: b.find_elements("css selector", f'tr.detail a[href="#job-{request_id}"]'), "no job link")
    assert browser.find_elements("css selector", f"#job-{request_id}")


def test_the_page_shows_a_jobs_webhook_attempts_and_the_receivers_answer(
    browser: WebDriver, wait_for: Wait, bria_env: BriaMock, bria_webhook_receiver: WebhookReceiver
) -> None:
    image = make_image(size=(32, 24)).base64
    with BriaSyncClient() as client:
        submitted = client.submit(
            endpoint=RMBG, payload={"image": image}, webhook_url=bria_webhook_receiver.url, raise_for_status=True
        )
    bria_webhook_receiver.wait_for(submitted.request_id, timeout=10)
    open_inspector(browser, wait_for, bria_env.base_url)

    card = wait_for(lambda b: b.find_elements("css selector", "#webhook-body li"), "no webhook delivery was shown")

    assert submitted.request_id in card[0].text  # type: ignore[index]
    assert "attempts: 1" in card[0].text and "receiver: 200" in card[0].text  # type: ignore[index]


def test_a_malformed_rule_shows_the_schema_error_and_a_rule_can_be_removed(
    browser: WebDriver, wait_for: Wait, bria_mock: BriaMock
) -> None:
    malformed = '{"endpoint": "remove_background", "action": {"type": "explode"}}'
    refused = httpx.post(
        bria_mock.url("/bria-mock/rules"), content=malformed, headers={"content-type": "application/json"}
    )
    open_inspector(browser, wait_for, bria_mock.base_url)

    add_rule(browser, malformed)
    wait_for(lambda b: b.find_element("id", "rule-error").text, "no error shown")
    assert browser.find_element("id", "rule-error").text == refused.json()["error"]["details"]
    assert browser.find_element("id", "rule-json").get_attribute("aria-invalid") is not None

    add_rule(browser, '{"id": "flaky", "endpoint": "status", "action": {"type": "error", "status": 503}, "times": 1}')
    wait_for(lambda b: count(b, '#rule-list li[data-rule-id="flaky"]') == 1, "the rule was not listed")
    httpx.get(bria_mock.url("/v2/status/a"), headers={"api_token": bria_mock.token})
    httpx.get(bria_mock.url("/v2/status/b"), headers={"api_token": bria_mock.token})
    wait_for(lambda b: count(b, '[data-rule-id="flaky"] .mark') == 2, "the fire history did not show both calls")
    assert count(browser, '[data-rule-id="flaky"] .mark.fired') == 1
    browser.find_element("css selector", '[data-rule-id="flaky"] button').click()
    wait_for(lambda b: count(b, "#rule-list li") == 0, "the rule was not removed")


def add_rule(browser: WebDriver, text: str) -> None:
    editor = browser.find_element("id", "rule-json")
    editor.clear()
    editor.send_keys(text)
    browser.find_element("css selector", "#rule-form button[type=submit]").click()


def test_reset_empties_the_lists(browser: WebDriver, wait_for: Wait, bria_env: BriaMock) -> None:
    submit_with_the_sdk(bria_env)
    bria_env.add_rule({"endpoint": "status", "action": {"type": "latency", "ms": 1}})
    open_inspector(browser, wait_for, bria_env.base_url)
    wait_for(lambda b: count(b, ROWS) == 2 and count(b, "#rule-list li") == 1, "the page did not list them")

    httpx.get(bria_env.url("/v2/status/other"), headers={"api_token": "another-token"})
    wait_for(lambda b: count(b, ROWS) == 3, "the other namespace's exchange was not listed")

    browser.find_element("id", "reset-token").send_keys(bria_env.token)
    browser.find_element("css selector", "#reset-namespace button").click()
    wait_for(lambda b: count(b, ROWS) == 1 and count(b, "#job-list li") == 0, "the namespace was not emptied")
    browser.find_element("css selector", "#reset-all button").click()

    wait_for(lambda b: count(b, ROWS) + count(b, "#job-list li") + count(b, "#rule-list li") == 0, "not emptied")
    assert browser.find_element("id", "exchanges-empty").is_displayed()


def test_the_controls_move_the_clock_and_set_the_rate_limit(
    browser: WebDriver, wait_for: Wait, bria_mock: BriaMock
) -> None:
    open_inspector(browser, wait_for, bria_mock.base_url)

    seconds = browser.find_element("id", "advance-seconds")
    seconds.clear()
    seconds.send_keys("30")
    browser.find_element("css selector", "#advance-clock button").click()
    rate = browser.find_element("id", "rate-value")
    rate.clear()
    rate.send_keys("5")
    browser.find_element("css selector", "#rate-limit button").click()

    wait_for(lambda b: b.find_element("id", "state-clock").text.startswith("real time + 30"), "clock not shown")
    wait_for(lambda b: b.find_element("id", "state-rate").text == "5 per minute", "rate limit not shown")


@pytest.fixture
def server_with(request: pytest.FixtureRequest) -> Iterator[Callable[[Settings], ServerThread]]:
    started: list[ServerThread] = []

    def start(settings: Settings) -> ServerThread:
        started.append(ServerThread(settings).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_with_an_admin_token_the_page_asks_for_it_and_sends_it(
    browser: WebDriver, wait_for: Wait, server_with: Callable[[Settings], ServerThread]
) -> None:
    server = server_with(Settings(admin_token="s3cret"))
    httpx.get(f"{server.base_url}/v2/status/x", headers={"api_token": "test-token"})
    open_inspector(browser, wait_for, server.base_url)
    wait_for(lambda b: b.find_element("id", "token-form").is_displayed(), "the page did not ask for the token")

    browser.find_element("id", "admin-token").send_keys("s3cret")
    browser.find_element("css selector", "#token-form button").click()

    wait_for(lambda b: count(b, ROWS) == 1, "the page did not load the data with the token")


def test_the_page_loads_10000_entries_in_under_two_seconds(
    browser: WebDriver, wait_for: Wait, server_with: Callable[[Settings], ServerThread]
) -> None:
    server = server_with(Settings(journal_max_entries=10_000, journal_max_bytes=64 * 1024 * 1024))
    fill_journal(server, 10_000)
    browser.get(f"{server.base_url}/bria-mock/ui")

    first_view = wait_for(lambda b: b.execute_script("return document.body.dataset.firstViewMs"), "never loaded")

    assert int(str(first_view)) < 2000  # the browser's own clock, from navigation to a full first view
    assert count(browser, ROWS) == 100
    assert browser.find_element("id", "state-journal").text == "10000 entries"


def fill_journal(server: ServerThread, entries: int) -> None:
    """Entries as the traffic policy records them (a status poll each), straight into the journal."""
    headers = [(b"host", b"127.0.0.1"), (b"api_token", b"<redacted>"), (b"user-agent", b"BriaSDK/0.3.1")]
    now = time.monotonic()
    for number in range(entries):
        server.backend.journal.record(
            at=now,
            method="GET",
            path=f"/v2/status/{number:032x}",
            endpoint="status",
            token_id="tok-" + "0" * 32,
            request_header_pairs=headers,
            request_body=b"",
            body_bytes=0,
            status=200 if number % 7 else 404,
            response_header_pairs=[(b"content-type", b"application/json")],
            response_bytes=60,
            rules=[],
            duration_ms=0.4,
        )
