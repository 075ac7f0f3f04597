"""Generate in the visitor's browser, tested as a visitor would: Playwright drives Chromium against `python app.py`
on the bundled checkpoint (which ships its ONNX export), with onnxruntime-web from `npm ci`.

With the server's /generate blocked the page still writes, and its greedy text is the server's; the same seed
samples the same text; and where the browser cannot (the switch set to the server, no WebAssembly, the runtime's
files missing, no export, characters the model does not know) the server writes and the page says why.

Needs Chromium (see tests/test_app_browser.py) and `npm ci` (node_modules/onnxruntime-web); without them these
tests skip and say why, or fail with TINYGPT_REQUIRE_BROWSER=1 (.ci/run). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import os

import pytest

from app_helpers import REPO, AppServer, app_env, fn_index, stream_generate
from test_app_browser import CHROMIUM_ARGS, find_chromium
from tinygpt.browser_files import find_runtime

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = REPO / "test-artifacts"
BUNDLED = REPO / "checkpoints" / "tinyshakespeare"
READY = "window.tinygptBrowser && window.tinygptBrowser.state !== 'loading'"
STATUS = "#generate-where .tinygpt-where-status"
JOIN = "**/gradio_api/queue/join*"  # how the page asks the server for /generate


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    if find_runtime(REPO)[0] is None:
        reason = "node_modules/onnxruntime-web is missing: run `npm ci` (package.json) to test Generate in the browser"
        if os.environ.get("TINYGPT_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = app_env(XDG_CACHE_HOME=str(tmp_path_factory.mktemp("cache")))
    log = tmp_path_factory.mktemp("browser_generate_logs") / "server.log"
    with AppServer(["--model", str(BUNDLED)], log, env=env) as server:
        server.fn = fn_index(server.config(), "generate")
        yield server


def open_page(browser, server, setup=None):
    """A new page on the demo, once its browser generation is ready (or known to be unavailable); `setup(page)`
    runs before it loads. `page.joins` records every /generate request the page makes."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.joins = []
    page.on("request", lambda request: page.joins.append(request.url) if "/queue/join" in request.url else None)
    if setup:
        setup(page)
    page.goto(server.url)
    page.wait_for_selector("#prompt textarea")
    page.wait_for_function(READY, timeout=120_000)
    return page


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def ask(page, prompt, new, temperature=0.0, top_k=0, top_p=1.0, seed=0) -> None:
    page.fill("#prompt textarea", prompt)
    for elem_id, value in (("max-new-tokens", new), ("temperature", temperature), ("top-k", top_k),
                           ("top-p", top_p), ("seed", seed)):
        set_number(page, elem_id, value)


def write_in_browser(page, prompt, new, **settings) -> str:
    """Generate, written by the page's browser: the text once the worker says it is done."""
    ask(page, prompt, new, **settings)
    page.evaluate("tinygptBrowser.last = null")
    page.click("#generate-btn")
    page.wait_for_function("tinygptBrowser.last", timeout=60_000)
    last = page.evaluate("tinygptBrowser.last")
    assert last["count"] == new and not last["stopped"], last
    text = page.input_value("#output textarea")
    assert page.inner_text(STATUS).startswith(f"Written in your browser: {new:,} characters in ")
    return text


def server_text(server, prompt, new, temperature=0.0, top_k=0, top_p=1.0, seed=0) -> str:
    answer = stream_generate(server.url, [prompt, new, temperature, top_k, top_p, seed], server.fn)
    assert answer["error"] is None, answer["error"]
    return answer["final"]


def test_with_the_servers_generate_blocked_the_browser_writes_the_servers_greedy_text(browser, server):
    """One page, as a visitor uses it. Greedy, past the model's 32-character window (where every step runs the
    window again), from a short prompt, an empty one (the first vocabulary character, not shown) and one longer than
    the window: the page's text equals /generate's, and the page never asks the server. Sampling: a seed gives the
    same text again. Stop stops. Then, with the server reachable again: characters the model does not know get the
    server's error, and the switch set to "the server" hands Generate to it. On a phone the switch fits."""
    ARTIFACTS.mkdir(exist_ok=True)
    blocked = []
    page = open_page(browser, server, setup=lambda p: p.route(JOIN, lambda r: blocked.append(r.request.url) or r.abort()))
    try:
        status = page.inner_text(STATUS)
        size = sum((BUNDLED / "onnx" / name).stat().st_size for name in ("model.onnx", "window.onnx")) / 1e6
        assert status.startswith(f"Your browser writes the text: the model's ONNX export ({size:.2f} MB) on "
                                 "onnxruntime-web 1.31.1, WebAssembly, 1 thread, ready in "), status
        assert page.is_checked("#generate-where input[value=browser]")
        assert page.evaluate("tinygptBrowser.timings.windowGraph") is True  # the window's own graph, past block_size
        prompts = ["ROMEO:\n", "", "KING RICHARD III:\nNow is the winter of our discontent\n"]
        texts = [write_in_browser(page, prompt, 120) for prompt in prompts]
        page.screenshot(path=str(ARTIFACTS / "app-generate-in-browser.png"), full_page=True)
        assert blocked == [] and page.joins == []  # the server was never asked
        for prompt, text in zip(prompts, texts):
            assert text.startswith(prompt) and len(text) == len(prompt) + 120
            assert text == server_text(server, prompt, 120)

        # Sampling: the same seed, the same text; another seed, another text (not the server's: other random numbers)
        first = write_in_browser(page, "ROMEO:\n", 100, temperature=0.9, top_k=20, top_p=0.95, seed=7)
        assert write_in_browser(page, "ROMEO:\n", 100, temperature=0.9, top_k=20, top_p=0.95, seed=7) == first
        assert write_in_browser(page, "ROMEO:\n", 100, temperature=0.9, top_k=20, top_p=0.95, seed=8) != first

        ask(page, "ROMEO:\n", 1000, temperature=0.8, seed=1)
        page.evaluate("tinygptBrowser.last = null")
        before = page.input_value("#output textarea")  # the last text: Stop must come while this one is written
        page.click("#generate-btn")
        page.wait_for_function("before => { const v = document.querySelector('#output textarea')?.value;"
                               " return !!v && v !== before && v.length > 40; }", arg=before)
        page.click("#stop-btn")
        page.wait_for_function("tinygptBrowser.last && tinygptBrowser.last.stopped", timeout=10_000)
        stopped_at = len(page.input_value("#output textarea"))
        page.wait_for_timeout(300)
        assert len(page.input_value("#output textarea")) == stopped_at < len("ROMEO:\n") + 1000
        assert page.inner_text(STATUS).endswith(", stopped.")
        assert blocked == [] and page.joins == []

        page.unroute(JOIN)
        page.fill("#prompt textarea", "héllo")
        page.click("#generate-btn")
        toast = page.get_by_text("'é'", exact=False).first
        toast.wait_for(timeout=15_000)
        assert "not in the model's vocabulary" in toast.inner_text()
        assert page.inner_text(STATUS).startswith("The server writes this one: it checks the prompt")

        page.check("#generate-where input[value=server]")
        assert page.inner_text(STATUS).startswith("The server writes the text (your browser could: the model's ONNX")
        ask(page, "ROMEO:\n", 60)
        page.click("#generate-btn")
        expected = server_text(server, "ROMEO:\n", 60)
        page.wait_for_function("text => document.querySelector('#output textarea')?.value === text", arg=expected,
                               timeout=60_000)
        assert len(page.joins) == 2  # the unknown characters' request, and this one

        page.set_viewport_size({"width": 390, "height": 844})  # a phone: the switch and its status wrap
        page.wait_for_timeout(300)
        layout = page.evaluate("""(() => { const r = document.querySelector('#generate-where').getBoundingClientRect();
            return {page: document.documentElement.scrollWidth, right: r.right}; })()""")
        assert layout["page"] <= 390 and layout["right"] <= 390, layout
        page.screenshot(path=str(ARTIFACTS / "app-generate-in-browser-phone.png"), full_page=True)
        (ARTIFACTS / "app-generate-in-browser-timings.json").write_text(json.dumps(page.evaluate("tinygptBrowser.timings")))
    finally:
        page.close()


def test_without_the_window_graph_the_decoder_runs_the_window_to_the_same_text(browser, server):
    """A server that has the model's decoder but no window graph (no onnx extra to make one): the page runs the
    sliding window on the decoder, with its shapes fixed, and writes the same greedy text."""
    def no_window(page):
        def answer(route):
            manifest = route.fetch().json()
            route.fulfill(json={**manifest, "window": None})
        page.route("**/tinygpt-web/manifest.json", answer)

    page = open_page(browser, server, setup=no_window)
    try:
        assert page.evaluate("tinygptBrowser.timings.windowGraph") is False
        assert write_in_browser(page, "ROMEO:\n", 120) == server_text(server, "ROMEO:\n", 120)
        assert page.joins == []
    finally:
        page.close()


NO_EXPORT = ("the model's ONNX export is missing and this server cannot make one: run `tinygpt export onnx MODEL`, "
             "or install the onnx extra")


def no_webassembly(page):
    page.add_init_script("delete globalThis.WebAssembly")


def no_runtime(page):
    page.route("**/tinygpt-web/runtime/**", lambda route: route.fulfill(status=404, body="not found"))


def no_export(page):
    manifest = {"available": False, "reason": NO_EXPORT, "config": {}}
    page.route("**/tinygpt-web/manifest.json", lambda route: route.fulfill(json=manifest))


@pytest.mark.parametrize("setup, says", [
    (no_webassembly, "The server writes the text: your browser has no WebAssembly."),
    (no_runtime, "The server writes the text: loading the model in your browser failed ("),
    (no_export, f"The server writes the text: {NO_EXPORT}."),
], ids=["no-webassembly", "no-runtime-files", "no-export"])
def test_the_server_writes_where_the_browser_cannot_and_the_page_says_why(browser, server, setup, says):
    page = open_page(browser, server, setup=setup)
    try:
        assert page.is_disabled("#generate-where input[value=browser]")
        assert page.is_checked("#generate-where input[value=server]")
        assert page.inner_text(STATUS).startswith(says), page.inner_text(STATUS)
        ask(page, "ROMEO:\n", 60)
        page.click("#generate-btn")
        full = len("ROMEO:\n") + 60
        page.wait_for_function(f"document.querySelector('#output textarea')?.value.length >= {full}", timeout=60_000)
        assert len(page.joins) == 1  # the server wrote it
        assert page.input_value("#output textarea") == server_text(server, "ROMEO:\n", 60)
    finally:
        page.close()
