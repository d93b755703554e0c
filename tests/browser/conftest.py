"""Headless Chromium for the inspector's browser tests: the OS's ``chromium`` driven through the
OS's ``chromedriver`` by Selenium (nothing is downloaded at run time).

Where either program is missing, every browser test skips with one reason that says what to
install; pytest's ``-ra`` summary (in ``addopts``) prints it once, at the end, with the count.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

# Debian names the browser chromium; other systems name it otherwise.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
MISSING = (
    "the inspector's browser tests need chromium and chromedriver: run scripts/install-os-packages as root "
    "(it runs apt-get install chromium chromium-driver)"
)
WAIT_SECONDS = 15


def _browser_path() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    """One headless Chromium per test module (starting one takes about a second)."""
    browser, driver = _browser_path(), shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(MISSING)
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
