"""app.py in a real browser: Playwright drives Chromium against `python app.py` on 127.0.0.1.

Chromium: Debian's package (`apt-get install -y chromium`, found on PATH or via $CHROMIUM_PATH) or Playwright's own
(`playwright install chromium`). With neither, every test here SKIPS and says why; with TINYGPT_REQUIRE_BROWSER=1
(for a CI that installs one) they fail instead. Screenshots and the measured timings are written to
test-artifacts/ (gitignored). The server is conftest's `server`, shared with the other app tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from app_helpers import REPO
from tinygpt import demo

# A browser, a server and trainings of up to a minute each: longer than the suite's per-test limit on a busy machine.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

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
    page.fill("#max-new-tokens input", str(value))


def wait_for_output(page, prompt: str, new_characters: int, timeout: int = 60_000) -> None:
    """Until the output is `prompt` and at least `new_characters` more: this click's text, not the one before it."""
    page.wait_for_function("([prompt, n]) => { const v = document.querySelector('#output textarea')?.value;"
                           " return !!v && v.startsWith(prompt) && v.length >= prompt.length + n; }",
                           arg=[prompt, new_characters], timeout=timeout)


def test_generate_streams_then_see_inside_shows_the_plots(page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.fill("#prompt textarea", PROMPT)
    set_max_new_characters(page, 1000)
    page.evaluate(RECORD_OUTPUT)
    page.click("#generate-btn")
    full = len(PROMPT) + 1000
    page.wait_for_function(f"document.querySelector('#output textarea')?.value.length >= {full}", timeout=60_000)
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
    page.wait_for_function(f"document.querySelector('#output textarea')?.value.length > {len(PROMPT) + 5}")
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


ERROR_BADGES = """Array.from(document.querySelectorAll('#next-chars *, #attention *, #context *'))
  .filter(e => e.children.length === 0 && (e.innerText || '').trim() === 'Error').length"""
TOASTS = "Array.from(document.querySelectorAll('.toast-body')).map(t => t.innerText)"


def test_refusals_stay_beside_their_field_and_numbers_are_never_clamped(page, server, tmp_path):
    """1280 px. An empty text and a time budget of 1, then of 9999, then a .png upload: each is refused beside its
    field (gradio's validator: it stays there until the next press, no toast that goes away), in words that name
    the field and its range, never clamped (a slider made 1 into 5 and trained); one message for the .png (no
    gradio file-type error beside ours); nothing trains. See inside says why it cannot read a prompt where the
    model's view goes, with no red "Error" badges. 99999 new characters are refused, not cut to 1000."""
    ARTIFACTS.mkdir(exist_ok=True)
    before = set(server.tmp.glob("tinygpt-demo-*/run-*"))
    page.get_by_role("tab", name="Train").click()
    page.get_by_label("paste text").check()
    page.wait_for_selector("#train-text textarea", state="visible")
    page.fill("#train-seconds input", "1")
    page.click("#train-btn")
    page.wait_for_function("document.querySelector('#train-seconds')?.innerText.includes('got 1') && "
                           "document.querySelector('#train-text')?.innerText.includes('Nothing to train on')",
                           timeout=30_000)
    assert ("The time budget must be between 5 and 60 seconds (this server's cap), got 1"
            in page.inner_text("#train-seconds"))
    assert "Nothing to train on: the pasted text is empty" in page.inner_text("#train-text")
    assert page.input_value("#train-seconds input") == "1"  # as typed
    page.fill("#train-text textarea", "\n".join(f"line {i}: λ → {i * i}" for i in range(300)))
    page.fill("#train-seconds input", "9999")
    page.click("#train-btn")
    page.wait_for_function("document.querySelector('#train-seconds')?.innerText.includes('got 9999')", timeout=30_000)
    assert "Nothing to train on" not in page.inner_text("#train-text")  # the next press cleared it

    picture = tmp_path / "picture.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    page.get_by_label("upload a .txt").check()
    page.wait_for_selector("#train-file", state="visible")
    page.locator("#train-file input[type=file]").set_input_files(str(picture))
    page.wait_for_function("document.querySelector('#train-file')?.innerText.replace(/\\s/g, '').includes('picture.png')",
                           timeout=15_000)
    page.fill("#train-seconds input", "10")
    page.click("#train-btn")
    page.wait_for_function("document.querySelector('#train-file')?.innerText.includes('is not a text file')",
                           timeout=30_000)
    assert "picture.png is not a text file: it looks like a picture" in page.inner_text("#train-file")
    assert "got 9999" not in page.inner_text("#train-seconds")
    page.wait_for_timeout(1000)
    assert page.evaluate(TOASTS) == []  # the one message is beside the file, and stays there
    assert page.inner_text("#train-progress").strip() == "" and not page.is_disabled("#train-btn")
    assert set(server.tmp.glob("tinygpt-demo-*/run-*")) == before  # nothing lined up or trained
    page.screenshot(path=str(ARTIFACTS / "app-train-refused.png"), full_page=True)

    page.get_by_role("tab", name="See inside").click()
    page.fill("#prompt textarea", "héllo")
    page.click("#inspect-btn")
    page.wait_for_function("document.querySelector('#context')?.innerText.includes(\"'é'\")", timeout=30_000)
    assert "not in the model's vocabulary" in page.inner_text("#context")
    page.wait_for_timeout(500)
    assert page.evaluate(ERROR_BADGES) == 0

    page.get_by_role("tab", name="Generate").click()
    page.fill("#prompt textarea", PROMPT)
    set_max_new_characters(page, 99999)
    page.click("#generate-btn")
    page.get_by_text("max_new_tokens must be a whole number from 1 to 1000: 99999 is greater than the maximum value 1000").first.wait_for(timeout=15_000)
    assert page.input_value("#max-new-tokens input") == "99999" and page.input_value("#output textarea") == ""


# ------------------------------------------------------------------------------------------------ the Train tab

SAMPLES = "document.querySelectorAll('#train-samples pre').length"
EXAMPLES = "#generate-examples"  # Generate's "Try these"
POINTS = "document.querySelectorAll('#train-curve svg .mark-symbol path').length"  # evaluations drawn as points
# Where the Train tab's parts are, and whether anything is cut off or wider than the page.
LAYOUT = """(() => {
  const box = e => { const el = typeof e === 'string' ? document.querySelector(e) : e;
                     if (!el) return null; const r = el.getBoundingClientRect();
                     return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width}; };
  const chart = document.querySelector('#train-curve svg');
  const texts = sel => Array.from(document.querySelectorAll(sel)).map(t => ({text: t.textContent, box: box(t)}));
  const size = document.querySelector('#train-size input');
  const table = document.querySelector('#facts table');
  return {
    page: document.documentElement.scrollWidth, viewport: window.innerWidth,
    chart: box('#train-curve'), svg: chart && box(chart),
    axisTitles: texts('#train-curve svg .role-axis-title text'),
    axisLabels: texts('#train-curve svg .role-axis-label text'),
    legend: texts('#train-curve svg .role-legend-label text').map(t => t.text),
    download: box('#train-download'), samples: box('#train-samples'),
    samplesOverflow: Array.from(document.querySelectorAll('#train-samples pre')).filter(
      p => p.scrollWidth > p.clientWidth + 1 || p.getBoundingClientRect().right > window.innerWidth + 1).length,
    sizeCut: size.scrollWidth > size.clientWidth + 1,
    tableScrolls: table ? getComputedStyle(table).overflowX : null,
    tableFits: table ? table.scrollWidth <= table.clientWidth + 1 && table.getBoundingClientRect().right <= window.innerWidth + 1 : null,
  };
})()"""


def assert_readable(layout: dict, where: str) -> None:
    """The loss chart shows both axes with their titles inside itself, a legend in plain words; nothing sticks out
    of the page; Download sits above the samples; the model size shows whole; a table fits or scrolls."""
    chart = layout["chart"]
    assert len(layout["axisTitles"]) == 2, (where, layout["axisTitles"])
    assert {t["text"] for t in layout["axisTitles"]} == {"step (batches trained on)", "loss (lower is better)"}
    for item in layout["axisTitles"] + layout["axisLabels"]:
        b = item["box"]
        assert chart["left"] - 1 <= b["left"] and b["right"] <= chart["right"] + 1, (where, item, chart)
        assert chart["top"] - 1 <= b["top"] and b["bottom"] <= chart["bottom"] + 1, (where, item, chart)
    assert layout["legend"] == ["held-out text (last 10 %)", "training text (each evaluation)",
                                "training text, last second"], (where, layout["legend"])
    assert layout["page"] <= layout["viewport"], (where, "the page is wider than the screen", layout)
    assert layout["samplesOverflow"] == 0, (where, "a sample runs past the screen")
    assert layout["download"]["bottom"] <= layout["samples"]["top"], (where, "Download is not above the samples")
    assert not layout["sizeCut"], (where, "the model size is cut off")
    assert layout["tableFits"] or layout["tableScrolls"] == "auto", (where, layout)


def progress_numbers(page) -> tuple[int, int, float]:
    """(the step it stopped at, the step of the val loss shown, that val loss) from the progress line."""
    text = page.inner_text("#train-progress")
    stopped = re.search(r"Stopped at step ([\d,]+)", text)
    val = re.search(r"Val loss ([\d.]+) at step ([\d,]+)", text)
    assert stopped and val, text
    return int(stopped[1].replace(",", "")), int(val[2].replace(",", "")), float(val[1])


def test_train_watch_it_learn_stop_then_generate_from_the_trained_model(page, server):
    """The bundled tiny Shakespeare with the default settings at 1280 px: the curve and the samples appear while it
    trains, the Train button is off meanwhile, Stop keeps the model with its val measured at the stop step, and this
    page's Generate then uses it (the served model here knows no 'Q')."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_role("tab", name="Train").click()
    page.wait_for_selector("#prompt", state="hidden")  # the prompt belongs to Generate and See inside
    assert "Texts up to 10 MB" in page.inner_text("#train-cap")
    assert page.is_disabled("#train-stop-btn")  # nothing to stop yet
    page.click("#train-btn")
    page.wait_for_function(f"{SAMPLES} >= 1", timeout=60_000)  # the untrained model's sample, at step 0
    assert page.is_disabled("#train-btn") and not page.is_disabled("#train-stop-btn")  # one training at a time
    assert "Newest sample: step 0 · val" in page.inner_text("#train-samples")
    page.wait_for_function(f"{POINTS} >= 2", timeout=30_000)  # step 0's two losses: a point each, before any line
    # step 350: evaluations every 175 steps, a sample at every other one (train_tab.job.evaluation_settings)
    page.wait_for_function(f"{SAMPLES} >= 2", timeout=120_000)
    progress = page.inner_text("#train-progress")
    assert "Training: step " in progress and " / 2,400" in progress and "s left" in progress, progress
    assert "bits per character" in progress
    # a sample every 350 steps (train_tab.job.evaluation_settings): the next one may already have come, ~6 s later
    newest = page.locator("#train-samples .newest strong").inner_text()
    step = re.match(r"Newest sample: step (\d+) · val", newest)
    assert step and int(step[1]) > 0 and int(step[1]) % 350 == 0, newest
    assert page.locator("#train-samples details").count() >= 1  # the older samples, folded
    page.screenshot(path=str(ARTIFACTS / "app-train-running.png"), full_page=True)

    page.click("#train-stop-btn")
    page.wait_for_selector("#train-download", state="visible", timeout=60_000)
    page.wait_for_function("!document.querySelector('#train-btn').disabled", timeout=15_000)
    stopped, measured, val = progress_numbers(page)
    assert measured == stopped, "the val loss shown was not measured at the step the model stopped at"
    assert page.locator("#train-samples .newest strong").inner_text() == f"Newest sample: step {stopped:,} · val {val:.3f}"
    result = page.inner_text("#train-progress")
    assert "The model you now use, download and push is the one from step" in result
    assert page.is_checked("#model-choice input[value='trained']")
    assert "trained in this tab on tinyshakespeare.txt" in page.inner_text("#facts")
    # The loss help speaks of this text: tiny Shakespeare's 65 characters, and what its samples become.
    help_text = page.inner_text("#train-loss-help")
    assert "There are 65 different characters in tinyshakespeare.txt" in help_text
    assert "ln 65 = 4.17" in help_text and "read like Shakespeare" in help_text
    # Push sits on its own row under the repo id and the token, with no empty grey block beside or under it.
    push = page.evaluate("""(() => { const b = document.querySelector('#push-btn').getBoundingClientRect();
      const row = document.querySelector('#push-btn').closest('.row').getBoundingClientRect();
      return {gap: row.height - b.height, width: b.width, row: row.width}; })()""")
    assert push["gap"] < 8 and push["width"] > push["row"] - 8, push
    # Stop once it has ended: off, and the result stays (it used to become "Nothing is training in this tab.").
    assert page.is_disabled("#train-stop-btn")
    page.click("#train-stop-btn", force=True)
    page.wait_for_timeout(1000)
    assert page.inner_text("#train-progress") == result
    page.wait_for_timeout(500)  # the chart redraws with the last evaluation
    assert_readable(page.evaluate(LAYOUT), "1280")
    page.screenshot(path=str(ARTIFACTS / "app-train-stopped.png"), full_page=True)
    page.screenshot(path=str(ARTIFACTS / "app-train-stopped-view.png"))

    prompt = "QUEEN ELIZABETH:\n"
    page.get_by_role("tab", name="Generate").click()
    page.wait_for_selector("#prompt textarea", state="visible")
    page.fill("#prompt textarea", prompt)
    set_max_new_characters(page, 100)
    page.click("#generate-btn")
    wait_for_output(page, prompt, 100)
    page.screenshot(path=str(ARTIFACTS / "app-train-generate.png"), full_page=True)

    # Back to the served model, which has never seen 'Q': Generate's prompt becomes one it can read.
    page.check("#model-choice input[value='served']")
    page.wait_for_function("document.querySelector('#prompt textarea')?.value === 'ROMEO:\\n'", timeout=15_000)
    assert "tiny" in page.inner_text("#facts")
    page.click("#generate-btn")
    wait_for_output(page, PROMPT, 100)  # the served model's text replaces the trained one's
    assert page.evaluate(TOASTS) == []


# The loss lines as drawn: [colour, stroke width] in the order they are painted (the last one on top).
LINES = """Array.from(document.querySelectorAll('#train-curve svg .mark-line path'))
  .map(p => [p.getAttribute('stroke'), parseFloat(p.getAttribute('stroke-width') || '1')])"""


def test_the_train_tab_on_a_phone(browser, server):
    """390 px: Generate shows without scrolling; a rhyme pasted 60 times, the tiny model, stopped after two
    evaluations: everything fits the screen (the model size shows whole), samples wrap, the chart keeps its axes and
    shows the training line over the held-out one (equal: the text repeats itself), the loss help speaks of the
    rhyme's characters, Download sits above the samples; then Generate offers a prompt made of the rhyme."""
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                            has_touch=True)
    try:
        page.goto(server.url)
        page.wait_for_selector("#generate-btn")
        assert page.locator("#generate-btn").bounding_box()["y"] + 40 < 844  # above the fold, not under the output
        page.get_by_role("tab", name="Train").click()
        assert page.evaluate("(() => { const i = document.querySelector('#train-size input'); "
                             "return i.scrollWidth <= i.clientWidth + 1; })()"), "the default model size is cut off"
        page.get_by_label("paste text").check()
        rhyme = "Twinkle, twinkle, little star, how I wonder what you are!"
        page.fill("#train-text textarea", "\n".join([rhyme] * 60))
        page.locator("#train-size input").fill("1 layer · 4 heads · 32 wide · context 16")
        page.locator("#train-size input").press("Enter")
        page.click("#train-btn")
        page.wait_for_function(f"{SAMPLES} >= 2", timeout=120_000)
        page.click("#train-stop-btn")
        page.wait_for_selector("#train-download", state="visible", timeout=60_000)
        stopped, measured, _ = progress_numbers(page)
        assert measured == stopped
        # One line pasted 60 times: the held-out 10 % repeats the training text, and the page says what that means.
        assert "Memorising, not learning: 100% of the held-out text" in page.inner_text("#train-progress")
        vocabulary = len(set(rhyme + "\n"))
        help_text = page.inner_text("#train-loss-help")
        assert f"There are {vocabulary} different characters in the pasted text" in help_text, help_text
        assert "65" not in help_text and "Shakespeare" not in help_text
        page.wait_for_timeout(500)
        lines = page.evaluate(LINES)
        held_out, training = (next(i for i, (colour, _) in enumerate(lines) if colour == c)
                              for c in ("#e6550d", "#2171b5"))
        assert held_out < training and lines[held_out][1] > lines[training][1] + 2, lines  # blue on top, inside
        assert_readable(page.evaluate(LAYOUT), "390")
        page.screenshot(path=str(ARTIFACTS / "app-train-phone.png"), full_page=True)

        page.get_by_role("tab", name="Generate").click()
        page.wait_for_function("document.querySelector('#prompt textarea')?.value === 'Twinkle, twinkle,'",
                               timeout=15_000)
        assert "Twinkle, twinkle," in page.inner_text(EXAMPLES) and "ROMEO" not in page.inner_text(EXAMPLES)
        page.click("#generate-btn")
        page.wait_for_function("document.querySelector('#output textarea')?.value.length > 40", timeout=60_000)
        assert page.input_value("#output textarea").startswith("Twinkle, twinkle,") and page.evaluate(TOASTS) == []
        page.screenshot(path=str(ARTIFACTS / "app-train-phone-generate.png"))
    finally:
        page.close()


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
            help_text = page.inner_text("#inside-help")
            # The words match the picture: dark blue is much attention (the scale's high end), and no "left" or
            # "below", which a phone's stacked layout would make wrong.
            assert "the darker the blue, the more" in help_text and not re.search(r"\b(left|below)\b", help_text, re.I)
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
    page.wait_for_function("document.querySelector('#train-progress')?.innerText.includes('s left')", timeout=60_000)
    (run,) = set(server.tmp.glob("tinygpt-demo-*/run-*")) - before
    page.close()
    deadline = time.monotonic() + 30  # gradio notices the closed tab when its heartbeat connection drops
    while run.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not run.exists(), "the closed tab's training went on (or its folder was kept)"


def test_train_on_an_uploaded_file(page, tmp_path):
    """An uploaded file of digits, Greek and arrows (none of which the served model knows): the trained model is this
    page's, and Generate's prompt and examples are then made of its characters (the served model's "ROMEO:" would
    be refused at once); the Model switch brings the served model's back."""
    text = "\n".join(f"{i} λ → {i * i}" for i in range(400)) + "\n"
    upload = tmp_path / "squares.txt"
    upload.write_text(text, encoding="utf-8")
    page.get_by_role("tab", name="Train").click()
    page.get_by_label("upload a .txt").check()
    page.locator("#train-file input[type=file]").set_input_files(str(upload))
    # The file's name shows once it is uploaded (gradio writes the stem and the extension in separate elements).
    page.wait_for_function("document.querySelector('#train-file')?.innerText.replace(/\\s/g, '').includes('squares.txt')",
                           timeout=15_000)
    page.click("#train-btn")
    page.wait_for_function(f"{SAMPLES} >= 1", timeout=60_000)
    page.click("#train-stop-btn")
    page.wait_for_selector("#train-download", state="visible", timeout=60_000)
    assert f"trained in this tab on squares.txt ({len(text):,} characters)" in page.inner_text("#facts")
    stopped, measured, val = progress_numbers(page)  # the stopped model, evaluated where it stopped
    assert measured == stopped
    assert page.locator("#train-samples .newest strong").inner_text() == f"Newest sample: step {stopped:,} · val {val:.3f}"

    page.get_by_role("tab", name="Generate").click()
    page.wait_for_function("document.querySelector('#prompt textarea')?.value === '0 λ → 0\\n'", timeout=15_000)
    examples = page.inner_text(EXAMPLES)
    assert "1 λ → 1" in examples and "ROMEO" not in examples
    page.click("#generate-btn")
    page.wait_for_function("document.querySelector('#output textarea')?.value.length > 20", timeout=60_000)
    assert set(page.input_value("#output textarea")) <= set(text) and page.evaluate(TOASTS) == []
    page.check("#model-choice input[value='served']")
    page.wait_for_function("document.querySelector('#prompt textarea')?.value === 'ROMEO:\\n'", timeout=15_000)
    assert "ROMEO" in page.inner_text(EXAMPLES) and "λ" not in page.inner_text(EXAMPLES)


def test_fine_tune_the_served_model_from_the_page(page):
    """"Start from: the model being served" turns the size choice off and says the served model's size instead;
    the run then says what it started from, and so does the model it leaves (the text adds digits and arrows,
    characters the served model does not know)."""
    page.get_by_role("tab", name="Train").click()
    page.get_by_label("paste text").check()
    page.fill("#train-text textarea", "\n".join(f"ROMEO: {i} → {i + 1}" for i in range(300)) + "\n")
    looks = "(() => { const w = getComputedStyle(document.querySelector('#train-size .container > .wrap')); " \
            "return [w.opacity, w.backgroundColor]; })()"
    enabled = page.evaluate(looks)
    page.get_by_label("the model being served (tiny)").check()
    page.wait_for_function("document.querySelector('#train-size input')?.disabled", timeout=10_000)
    assert ("Fine-tuning keeps the served model's size (2 layers · 4 heads · 64 wide · context 32)"
            in page.inner_text("#train-size"))
    disabled = page.evaluate(looks)
    assert float(disabled[0]) <= 0.6 < float(enabled[0]) and disabled[1] != enabled[1]  # off, and it looks off
    page.get_by_label("scratch (random weights)").check()
    page.wait_for_function("!document.querySelector('#train-size input').disabled", timeout=10_000)
    page.get_by_label("the model being served (tiny)").check()
    page.wait_for_function("document.querySelector('#train-size input')?.disabled", timeout=10_000)
    page.click("#train-btn")
    page.wait_for_function(f"{SAMPLES} >= 1", timeout=60_000)
    assert "Fine-tuning the served model tiny on the pasted text" in page.inner_text("#train-progress")
    page.screenshot(path=str(ARTIFACTS / "app-train-fine-tune.png"), full_page=True)
    page.click("#train-stop-btn")
    page.wait_for_selector("#train-download", state="visible", timeout=60_000)
    assert "fine-tuned in this tab from tiny on the pasted text" in page.inner_text("#facts")


def test_a_second_training_waits_with_its_place_in_line_and_stop_leaves_the_line(browser, server):
    """One training at a time (the default --train-concurrency 1): another tab reads "1st in line, about N s" in its
    progress line while it waits; its Stop gives the place up and it never trains."""
    first, second = (browser.new_page(viewport={"width": 1280, "height": 1000}) for _ in range(2))
    try:
        for page in (first, second):
            page.goto(server.url)
            page.get_by_role("tab", name="Train").click()
        first.click("#train-btn")
        first.wait_for_function("document.querySelector('#train-progress')?.innerText.includes('s left')",
                                timeout=60_000)
        second.click("#train-btn")
        second.wait_for_function("/Waiting: 1st in line, about \\d+ s/.test(document.querySelector('#train-progress')?.innerText)",
                                 timeout=30_000)
        assert second.is_disabled("#train-btn")
        second.screenshot(path=str(ARTIFACTS / "app-train-queued.png"), full_page=True)
        second.click("#train-stop-btn")
        second.wait_for_function("document.querySelector('#train-progress')?.innerText.includes('given up')")
        second.wait_for_function("!document.querySelector('#train-btn').disabled", timeout=15_000)
        first.click("#train-stop-btn")
        first.wait_for_selector("#train-download", state="visible", timeout=60_000)
        second.wait_for_timeout(2000)
        assert "given up" in second.inner_text("#train-progress") and not second.is_visible("#train-download")
    finally:
        first.close()
        second.close()
