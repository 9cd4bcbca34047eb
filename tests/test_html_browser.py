"""report.html of a real tiny run, opened from disk in headless Chromium (Debian's package).

Checks what a reader sees, with the page copied alone into an empty folder: it loads
with no script error, every claim's status and every chart is visible, the trial table
sorts and filters, nothing is fetched from the network; a screenshot of the whole page
goes into the run folder (``report_screenshot.png``). Chromium runs with every host
name unresolvable and a dead proxy, so a page that needed the network would show it.
Skipped, with the reason, where Chromium, its driver or selenium is absent (``.ci/run``
installs them).
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from fixtures.tiny_run import TinyRun

from bench.store import schema
from bench.store.verdict_file import read_verdict

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOT = "report_screenshot.png"


def _absent() -> str | None:
    if CHROMIUM is None or CHROMEDRIVER is None:
        return (
            "Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    reason = _absent()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--proxy-server=127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    pid = service.process.pid
    try:
        yield driver
    finally:
        driver.quit()
        # quit() ends the browser and the driver; a driver still there is ended by its PID.
        try:
            proc = psutil.Process(pid)
            for child in proc.children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait(timeout=10)
        except psutil.NoSuchProcess:
            pass


@pytest.fixture(scope="module")
def page(tiny_run: TinyRun, browser, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny run folder (conftest.py); the browser shows its report.html copied
    alone into an empty folder, so nothing beside the page can be what it shows."""
    run = tiny_run.path
    path = run / schema.REPORT_HTML
    assert path.is_file(), "bench run writes report.html"
    alone = Path(shutil.copy2(path, tmp_path_factory.mktemp("copied") / schema.REPORT_HTML))
    browser.get(alone.resolve().as_uri())
    return run


def _errors(browser) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_the_page_loads_with_no_script_error_and_fetches_nothing(page: Path, browser) -> None:
    assert browser.execute_script("return document.readyState") == "complete"
    assert _errors(browser) == []
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert [u for u in fetched if not u.startswith(("data:", "file:"))] == []


def test_every_claim_status_and_every_chart_is_visible(page: Path, browser) -> None:
    from selenium.webdriver.common.by import By

    verdict = read_verdict(page)
    assert verdict is not None
    for claim in verdict.claims:
        section = browser.find_element(By.CSS_SELECTOR, f'section[data-claim="{claim.id}"]')
        status = section.find_element(By.CSS_SELECTOR, "h2 .badge")
        browser.execute_script("arguments[0].scrollIntoView()", status)
        assert status.is_displayed() and status.text == claim.status
    drawn = {p.stem for p in (page / schema.CHARTS_DIR).glob("*.svg")}
    assert drawn
    figures = browser.find_elements(By.CSS_SELECTOR, "figure.chart")
    assert {f.get_attribute("data-chart") for f in figures} == drawn
    for figure in figures:
        browser.execute_script("arguments[0].scrollIntoView()", figure)
        chart = figure.find_element(By.CSS_SELECTOR, "svg, img")
        assert chart.is_displayed(), figure.get_attribute("data-chart")
        assert chart.size["width"] > 200 and chart.size["height"] > 100
    # Hover: each point drawn with its median and range has a <title> over a painted target.
    widths = browser.execute_script(
        "return Array.from(document.querySelectorAll('figure.chart g[id*=\"bench-tip\"]'))"
        ".filter(g => g.querySelector('title')).map(g => g.getBBox().width)"
    )
    assert widths and all(w > 0 for w in widths)


def _column(browser, index: int) -> list[str]:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#trials tbody tr'))"
        ".filter(r => r.style.display !== 'none')"
        f".map(r => r.cells[{index}].textContent)"
    )


def test_the_trial_table_sorts_and_filters(page: Path, browser) -> None:
    from selenium.webdriver.common.by import By

    headings = browser.find_elements(By.CSS_SELECTOR, "#trials thead th")
    names = [h.text.strip() for h in headings]
    numeric = names.index("idle_connections")
    browser.execute_script("arguments[0].scrollIntoView()", headings[numeric])
    headings[numeric].click()
    values = [float(v) for v in _column(browser, numeric)]
    assert values == sorted(values) and len(set(values)) > 1
    headings[numeric].click()
    assert [float(v) for v in _column(browser, numeric)] == sorted(values, reverse=True)
    backend = names.index("backend")
    headings[backend].click()
    words = _column(browser, backend)
    assert words == sorted(words, key=str.lower)
    box = browser.find_element(By.CSS_SELECTOR, 'input.filter[data-table="trials"]')
    box.send_keys("epoll")
    kept = _column(browser, backend)
    # The filter keeps rows containing the text: epoll, epoll-et, c-epoll in a default run.
    assert kept and all("epoll" in k for k in kept) and len(kept) < len(words)
    shown = browser.find_element(By.ID, "trials-count").text
    assert int(shown) == len(kept)
    browser.execute_script(
        "arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input'))", box
    )
    assert len(_column(browser, backend)) == len(words)
    assert _errors(browser) == []


def test_a_screenshot_of_the_whole_page_goes_into_the_run_folder(page: Path, browser) -> None:
    browser.execute_script("window.scrollTo(0, 0)")
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path = page / SCREENSHOT
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
