"""A real browser for the tests: Debian's headless Chromium driven by Selenium.

    with Browser() as browser:
        browser.open(url)
        figures = browser.wait("document.querySelector('[data-edge]') && {...}", "the graph")
        browser.screenshot(path)
        assert browser.console_errors() == []

Chromium and its driver come from Debian (cluster/node-real/install-packages.sh installs them
when missing); nothing is downloaded by Selenium. Waits poll with a deadline (polling.wait_for).
"""

import subprocess
from pathlib import Path

import pytest
from polling import wait_for
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DEADLINE = 30.0  # a cold Chromium start plus a few 2 s refreshes on a loaded 2-core machine


def ensure_chromium():
    """Chromium and chromium-driver from Debian, installed when missing (root), or fail
    saying what to install."""
    run = subprocess.run(
        [str(REPO / "cluster/node-real/install-packages.sh"), "chromium", "chromium-driver"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if run.returncode:
        pytest.fail(f"Chromium is needed for the browser tests: {run.stderr.strip()}")


class Browser:
    """One headless Chromium window (1280 wide) and its console log."""

    def __init__(self, width=1280, height=900):
        ensure_chromium()
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in (
            "--headless=new",
            "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            f"--window-size={width},{height}",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.width = width
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.log = []  # every console entry read so far (get_log empties Chromium's buffer)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.driver.quit()

    def open(self, url):
        self.driver.get(url)

    def wait(self, condition, what, timeout=DEADLINE):
        """Polls the JavaScript expression `condition` until it is truthy; returns its value
        (the DOM figures the caller asked for)."""
        return wait_for(
            lambda: self.driver.execute_script(f"return ({condition});"), timeout, what, 0.1
        )

    def console(self):
        self.log += self.driver.get_log("browser")
        return self.log

    def console_errors(self):
        """The console's SEVERE entries: script errors, failed loads."""
        return [entry["message"] for entry in self.console() if entry["level"] == "SEVERE"]

    def screenshot(self, path):
        """The whole page as a PNG at `path` (the window grown to the page's height)."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight;")
        # The viewport as tall as the page (a window size would count the browser's frame).
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": int(height), "deviceScaleFactor": 1, "mobile": False},
        )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path)), f"no screenshot written to {path}"
        return Path(path)
