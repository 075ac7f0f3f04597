"""app.py in a real browser: Playwright drives Chromium against `python app.py` on 127.0.0.1.

Chromium: Debian's package (`apt-get install -y chromium`, found on PATH or via $CHROMIUM_PATH) or Playwright's own
(`playwright install chromium`). With neither, every test here SKIPS and says why; with TINYGPT_REQUIRE_BROWSER=1
(for a CI that installs one) they fail instead. Screenshots and the measured timings are written to
test-artifacts/ (gitignored).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from app_helpers import REPO, AppServer, app_env, make_model_dir
from tinygpt import demo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = REPO / "test-artifacts"
PROMPT = "ROMEO:\n"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]


def find_chromium() -> str | None:
    """The Chromium to launch (None: Playwright's own); skips the tests if there is none."""
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    for candidate in (os.environ.get("CHROMIUM_PATH"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (path := shutil.which(candidate)):
            return path
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        if Path(p.chromium.executable_path).exists():
            return None
    reason = (
        "no Chromium to drive: install Debian's (apt-get install -y chromium) or Playwright's "
        "(python -m playwright install chromium), or set CHROMIUM_PATH"
    )
    if os.environ.get("TINYGPT_REQUIRE_BROWSER"):  # CI that installed a browser: its absence is a failure
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model_dir = make_model_dir(tmp_path_factory.mktemp("browser_model") / "tiny", n_embd=64)
    tmp = tmp_path_factory.mktemp("browser_tmp")  # the server's temporary files: the Train tab's runs
    env = app_env(TMPDIR=str(tmp), GRADIO_TEMP_DIR=str(tmp / "gradio"))
    with AppServer(["--model", str(model_dir)], tmp_path_factory.mktemp("browser_logs") / "server.log", env=env) as s:
        s.tmp = tmp
        yield s


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server.url)
    page.wait_for_selector("#prompt textarea")
    yield page
    page.close()


# Records (ms since the Generate click, length of the output text) every few milliseconds, in the page itself.
RECORD_OUTPUT = """() => {
  window.__samples = [];
  window.__clicked = null;
  document.querySelector('#generate-btn').addEventListener('click', () => { window.__clicked = performance.now(); }, true);
  const box = document.querySelector('#output textarea');
  let last = -1;
  setInterval(() => {
    if (window.__clicked === null) return;
    const n = box.value.length;
    if (n !== last) { window.__samples.push([performance.now() - window.__clicked, n]); last = n; }
  }, 2);
}"""


def set_max_new_characters(page, value: int) -> None:
    box = page.get_by_label("number input for Max new characters (server cap 1000)")
    box.fill(str(value))
    box.press("Enter")


def test_generate_streams_then_see_inside_shows_the_plots(page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.fill("#prompt textarea", PROMPT)
    set_max_new_characters(page, 1000)
    page.evaluate(RECORD_OUTPUT)
    page.click("#generate-btn")
    full = len(PROMPT) + 1000
    page.wait_for_function(f"document.querySelector('#output textarea').value.length >= {full}", timeout=60_000)
    samples = page.evaluate("window.__samples")
    text = page.input_value("#output textarea")
    assert text.startswith(PROMPT) and len(text) == full

    growing = [(t, n) for t, n in samples if len(PROMPT) < n < full]
    assert len(growing) >= 5, f"the text did not stream: {samples}"  # seen at many lengths on its way
    first_char_ms = next(t for t, n in samples if n > len(PROMPT))
    done_ms = next(t for t, n in samples if n >= full)
    assert first_char_ms < done_ms / 2, samples
    page.screenshot(path=str(ARTIFACTS / "app-generate.png"), full_page=True)

    page.get_by_role("tab", name="See inside").click()  # selecting the tab looks inside the prompt
    page.wait_for_function("document.querySelector('#context')?.innerText.includes('ROMEO:')", timeout=30_000)
    page.wait_for_function(
        "(() => { const img = document.querySelector('#attention img'); return img && img.naturalWidth > 100; })()",
        timeout=30_000,
    )
    page.wait_for_selector("#next-chars svg.marks", timeout=30_000)  # the bar chart, drawn by Vega
    assert page.locator("#next-chars svg.marks path[aria-roledescription='bar']").count() == 10
    page.screenshot(path=str(ARTIFACTS / "app-see-inside.png"), full_page=True)
    (ARTIFACTS / "app-browser-timings.json").write_text(
        json.dumps({"first_char_ms": first_char_ms, "all_1000_chars_ms": done_ms, "updates_seen": len(samples)}, indent=1)
    )


def test_stop_ends_the_stream(page):
    page.fill("#prompt textarea", PROMPT)
    set_max_new_characters(page, 1000)
    page.evaluate(RECORD_OUTPUT)
    page.click("#generate-btn")
    page.wait_for_function(f"document.querySelector('#output textarea').value.length > {len(PROMPT) + 5}")
    page.click("#stop-btn")
    page.wait_for_timeout(1500)
    stopped_at = len(page.input_value("#output textarea"))
    page.wait_for_timeout(500)
    assert len(page.input_value("#output textarea")) == stopped_at < len(PROMPT) + 1000


def test_unknown_characters_show_an_error_naming_them(page):
    page.fill("#prompt textarea", "héllo")
    page.click("#generate-btn")
    toast = page.get_by_text("'é'", exact=False).first
    toast.wait_for(timeout=15_000)
    assert "not in the model's vocabulary" in toast.inner_text()


# ------------------------------------------------------------------------------------------------ the Train tab

SAMPLES = "document.querySelectorAll('#train-samples pre').length"
# Points drawn in the loss chart (Vega draws each series as one path; count the lines with at least 2 points).
CURVE_LINES = """(() => Array.from(document.querySelectorAll('#train-curve svg path[aria-roledescription="line mark"]'))
  .filter(p => (p.getAttribute('d') || '').split('L').length >= 2).length)()"""


def test_train_watch_it_learn_stop_then_generate_from_the_trained_model(page, server):
    """The bundled tiny Shakespeare with the default settings: the curve and the samples appear while it trains,
    Stop keeps the model, and this page's Generate then uses it (the served model here knows no 'Q')."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_role("tab", name="Train").click()
    assert "Texts up to 10 MB" in page.inner_text("#train-cap")
    page.click("#train-btn")
    page.wait_for_function(f"{SAMPLES} >= 1", timeout=60_000)  # the untrained model's sample, at step 0
    assert "step 0 · val" in page.inner_text("#train-samples")
    page.click("#train-btn")  # pressed twice: refused, and the running training carries on
    page.get_by_text("already training", exact=False).first.wait_for(timeout=15_000)
    page.wait_for_function(f"{SAMPLES} >= 2", timeout=120_000)  # step 300
    page.wait_for_function(f"{CURVE_LINES} >= 2", timeout=30_000)  # running train loss + evaluations
    progress = page.inner_text("#train-progress")
    assert "step " in progress and " / 2,400" in progress and "s left" in progress, progress
    newest = page.locator("#train-samples strong").first.inner_text()
    assert newest.startswith("step 300 · val"), newest  # newest first
    page.screenshot(path=str(ARTIFACTS / "app-train-running.png"), full_page=True)

    page.click("#train-stop-btn")
    page.wait_for_selector("#train-download", state="visible", timeout=60_000)
    assert "stopped: kept what it learnt" in page.inner_text("#train-progress")
    assert page.is_checked("#model-choice input[value='trained']")
    assert "trained in this tab on tinyshakespeare.txt" in page.inner_text("#facts")
    page.screenshot(path=str(ARTIFACTS / "app-train-stopped.png"), full_page=True)

    prompt = "QUEEN ELIZABETH:\n"
    page.get_by_role("tab", name="Generate").click()
    page.fill("#prompt textarea", prompt)
    set_max_new_characters(page, 100)
    page.click("#generate-btn")
    page.wait_for_function(f"document.querySelector('#output textarea').value.length >= {len(prompt) + 100}",
                           timeout=60_000)
    assert page.input_value("#output textarea").startswith(prompt)
    page.screenshot(path=str(ARTIFACTS / "app-train-generate.png"), full_page=True)

    page.check("#model-choice input[value='served']")  # back to the served model, which has never seen 'Q'
    page.wait_for_function("document.querySelector('#facts').innerText.includes('tiny')", timeout=15_000)
    page.click("#generate-btn")
    page.get_by_text("'Q'", exact=False).first.wait_for(timeout=15_000)


def test_see_inside_is_legible_on_a_laptop_and_on_a_phone(browser, server):
    prompt = "ROMEO:\nWhat light through yonder window"
    sizes = {}
    for name, viewport in {"laptop": (1280, 1000), "phone": (390, 844)}.items():
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        try:
            page.goto(server.url)
            page.fill("#prompt textarea", prompt)
            page.get_by_role("tab", name="See inside").click()
            page.wait_for_function("document.querySelectorAll('#attention img').length == 8 && "
                                   "Array.from(document.querySelectorAll('#attention img')).every(i => i.naturalWidth > 0)",
                                   timeout=30_000)
            page.wait_for_selector("#next-chars svg.marks", timeout=30_000)
            sizes[name] = page.evaluate("""(() => {
                const img = document.querySelector('#attention img');
                const box = e => document.querySelector(e).getBoundingClientRect();
                const ticks = Array.from(document.querySelectorAll('#next-chars svg text')).map(t => parseFloat(getComputedStyle(t).fontSize));
                return {scale: img.getBoundingClientRect().width / img.naturalWidth, chartTop: box('#next-chars').top,
                        contextTop: box('#context').top, chartWidth: box('#next-chars').width,
                        smallestTick: Math.min(...ticks), pageWidth: document.documentElement.scrollWidth};
            })()""")
            page.screenshot(path=str(ARTIFACTS / f"app-see-inside-{name}.png"), full_page=True)
        finally:
            page.close()
    label_px = demo.LABEL_PT * demo.MAP_DPI / 72
    for name, s in sizes.items():
        assert label_px * s["scale"] >= 10, (name, s)  # the heat maps' character labels, as displayed
        assert s["smallestTick"] >= 10, (name, s)  # the chart's
    laptop, phone = sizes["laptop"], sizes["phone"]
    assert laptop["contextTop"] == pytest.approx(laptop["chartTop"], abs=5)  # side by side
    assert phone["contextTop"] > phone["chartTop"] + 100 and phone["chartWidth"] > 300  # stacked, full width
    assert phone["pageWidth"] <= 390  # nothing wider than the phone


def test_closing_the_tab_stops_its_training_and_frees_it(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server.url)
    before = set(server.tmp.glob("tinygpt-demo-*/run-*"))
    page.get_by_role("tab", name="Train").click()
    page.click("#train-btn")
    page.wait_for_function("document.querySelector('#train-progress').innerText.includes('s left')", timeout=60_000)
    (run,) = set(server.tmp.glob("tinygpt-demo-*/run-*")) - before
    page.close()
    deadline = time.monotonic() + 30  # gradio notices the closed tab when its heartbeat connection drops
    while run.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not run.exists(), "the closed tab's training went on (or its folder was kept)"


def test_train_on_an_uploaded_file(page, tmp_path):
    text = "\n".join(f"{i} λ → {i * i}" for i in range(400)) + "\n"
    upload = tmp_path / "squares.txt"
    upload.write_text(text, encoding="utf-8")
    page.get_by_role("tab", name="Train").click()
    page.get_by_label("upload a .txt").check()
    page.locator("#train-file input[type=file]").set_input_files(str(upload))
    page.wait_for_selector("#train-file :text('squares.txt')", timeout=15_000)
    page.click("#train-btn")
    page.wait_for_function(f"{SAMPLES} >= 1", timeout=60_000)
    page.click("#train-stop-btn")
    page.wait_for_selector("#train-download", state="visible", timeout=60_000)
    assert f"trained in this tab on squares.txt ({len(text):,} characters)" in page.inner_text("#facts")
    sample = page.locator("#train-samples pre").first.inner_text()
    assert set(sample) - {"\n"} <= set(text)


def test_a_second_training_waits_with_its_place_in_the_queue(browser, server):
    """One training at a time (the default --train-concurrency 1): another tab sees "queue: 1/1" while it waits;
    its Stop gives the place up."""
    first, second = (browser.new_page(viewport={"width": 1280, "height": 1000}) for _ in range(2))
    try:
        for page in (first, second):
            page.goto(server.url)
            page.get_by_role("tab", name="Train").click()
        first.click("#train-btn")
        first.wait_for_function("document.querySelector('#train-progress').innerText.includes('s left')",
                                timeout=60_000)
        second.click("#train-btn")
        second.get_by_text("queue: 1/1", exact=False).first.wait_for(timeout=30_000)
        assert "Waiting for a free training slot" in second.inner_text("#train-progress")
        second.screenshot(path=str(ARTIFACTS / "app-train-queued.png"), full_page=True)
        second.click("#train-stop-btn")
        second.wait_for_function("document.querySelector('#train-progress').innerText.includes('given up')")
        first.click("#train-stop-btn")
        first.wait_for_selector("#train-download", state="visible", timeout=60_000)
        second.wait_for_function(
            "document.querySelector('#train-progress').innerText.includes('cancelled before it started')",
            timeout=30_000)
        assert not second.is_visible("#train-download")
    finally:
        first.close()
        second.close()
