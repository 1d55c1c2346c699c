"""`kubectl modelpilot dashboard` in a real browser: the installed console script serves the page
from a real canary rollout on the local cluster, and Debian's headless Chromium (driven by
Playwright, never a downloaded browser) loads it, follows the canary's weight as it changes,
writes a screenshot, and reports no console error or warning.

The screenshot goes to $MODELPILOT_TEST_OUTPUT, else <repo>/.test-output/.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, sync_playwright

from tests.e2e.canary import NAME, Env, start_v1
from tests.e2e.plugin_cli import PLUGIN, plugin_env
from tests.e2e.support import ClusterHandle

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 120_000  # a rollout step: the canary's analysis interval plus the operator's reaction


def output_dir() -> Path:
    directory = Path(os.environ.get("MODELPILOT_TEST_OUTPUT") or ROOT / ".test-output")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@contextmanager
def dashboard(cluster: ClusterHandle, namespace: str, log: Path) -> Iterator[str]:
    """The dashboard as a user starts it (a free port, polling every second); yields its URL."""
    with log.open("w") as errors:
        process = subprocess.Popen([str(PLUGIN), "dashboard", "-n", namespace, "--port", "0", "--interval", "1"],
                                   env=plugin_env(cluster), stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 60)
            line = process.stdout.readline() if ready else ""
            found = re.search(r" at (http://\S+) ", line)
            assert found, f"no URL from the dashboard: {line!r}; exit {process.poll()}; stderr: {log.read_text()}"
            yield found.group(1)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def chromium(problems: list[str]) -> Iterator[Page]:
    """A page in Debian's headless Chromium; console errors and warnings and uncaught exceptions
    are appended to `problems`."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text} ({message.location})")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", on_console)
            page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
            yield page
        finally:
            browser.close()


def shown_weight_above(page: Page, floor: int) -> int:
    """Wait until the page shows a canary weight above `floor`; return it."""
    handle = page.wait_for_function(
        """(floor) => {
             const shown = document.querySelector('#weight-value').dataset.weight;
             return shown !== undefined && shown !== '' && Number(shown) > floor ? Number(shown) : false;
           }""", arg=floor, timeout=WAIT_MS)
    return int(handle.json_value())


def cell(page: Page, key: str, column: str) -> Any:
    return page.locator(f'#mdeps tr[data-key="{key}"] td.c-{column}')


def test_dashboard_follows_a_canary_in_chromium(env: Env, local_cluster: ClusterHandle, tmp_path: Path) -> None:
    start_v1(env)
    problems: list[str] = []
    with dashboard(local_cluster, env.namespace, tmp_path / "dashboard.log") as url, chromium(problems) as page:
        key = f"{env.namespace}/{NAME}"
        page.goto(f"{url}#{key}")
        page.wait_for_selector(f'#mdeps tr[data-key="{key}"]', timeout=WAIT_MS)
        assert cell(page, key, "stable").inner_text() == "v1" and cell(page, key, "canary").inner_text() == "-"
        assert page.inner_text("#scope") == f"namespace {env.namespace}"

        started = time.monotonic()
        env.set_version("v2", env.model("good2"))
        first = shown_weight_above(page, 0)
        second = shown_weight_above(page, first)
        # The chart holds what the dashboard saw: both weights, whatever the page shows now.
        page.wait_for_selector("#metric-charts figure[data-metric]", timeout=WAIT_MS)
        charted = {int(w) for w in page.eval_on_selector_all(
            "#weight-chart [data-weight]", "marks => marks.map(m => m.dataset.weight)")}
        assert {first, second} <= charted, charted
        page.wait_for_selector("#events td:text-is('CanaryStarted')", timeout=WAIT_MS)
        screenshot = output_dir() / "dashboard-canary.png"
        page.screenshot(path=str(screenshot), full_page=True)
        print(f"screenshot: {screenshot}")

        # The promotion reaches the list: stable v2, no canary.
        page.wait_for_function(
            f"""() => {{
                  const row = document.querySelector('#mdeps tr[data-key="{key}"]');
                  return row && row.querySelector('td.c-stable').textContent === 'v2'
                         && row.querySelector('td.c-canary').textContent === '-';
                }}""", timeout=WAIT_MS)
        took = time.monotonic() - started
        assert page.is_hidden("#error"), page.inner_text("#error")
    assert (first, second) == (20, 50)  # the steps of tests.e2e.canary.spec
    assert problems == [], "\n".join(problems)
    assert screenshot.stat().st_size > 10_000
    print(f"weights seen in the page: {first}% then {second}%; rollout followed for {took:.0f}s")
