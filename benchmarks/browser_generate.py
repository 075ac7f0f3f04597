"""Generate in the visitor's browser against the server and PyTorch, on one machine in one run.

    python benchmarks/browser_generate.py [--model DIR] [--tokens 1000] [--rounds 5] [--json FILE]

Starts `python app.py --model DIR` (default: the bundled checkpoint, block 32, 2 layers, 64 wide) with an empty ONNX
cache, drives a headless Chromium (/usr/bin/chromium, or $CHROMIUM_PATH) against it with Playwright, and measures,
all greedy (temperature 0) from "ROMEO:\\n":

* the export: its size, where it came from (the model's own onnx/model.onnx, or exported on the first request), the
  size of the window's graph (tinygpt.browser_export) and how long the first /tinygpt-web/manifest.json took (that
  includes the exports when they are made);
* page load to the first character written in the browser: a fresh page (empty browser cache), the request typed
  while the model loads, Generate clicked by the page itself the moment the browser is ready; split into
  navigation -> ready (runtime, model, sessions, warm-up) and click -> first character, and that first text's rate;
* then `--rounds` interleaved rounds (browser, server, eager, browser, ...: a busy machine slows each alike) of
  `--tokens` new characters each:
  - the browser (onnxruntime-web, WebAssembly, 1 thread): wall time as the worker measures it; per CPU-second of
    the worker thread alone (the decoding loop, /proc's per-thread times: about what an idle core gives), and of
    all Chromium processes (what the visitor's machine spends, the page's redraws included); and the same on a
    second page told there is no window graph (the decoder then runs the window): what that graph buys;
  - the server's per-request rate: /generate through gradio's queue (tests/app_helpers.py: stream_generate),
    request to last character; and per CPU-second of the server process;
  - PyTorch eager: `model.generate` in this process, 1 thread (wall and process CPU time);
  each as the median over rounds, and its ratio to the server and to eager as the median of per-round ratios;
* that the browser's greedy text equals the server's, and the server's PyTorch's.

On a shared machine wall times move with the load (printed); the per-round ratios and CPU-second rates much less.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the demo tests' server helpers
sys.path.insert(0, str(REPO))

from app_helpers import AppServer, app_env, fn_index, stream_generate  # noqa: E402

PROMPT = "ROMEO:\n"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]
# In the page, before anything loads: once the request is typed (window.__armed), click Generate the moment the
# browser is ready, so that "page load to first character" has no polling from outside in it.
CLICK_WHEN_READY = """
const tick = () => {
  const page = window.tinygptBrowser;
  if (window.__armed && page && page.state === "ready") { window.__clickedAt = performance.now();
    document.querySelector("#generate-btn").click(); return; }
  if (page && page.state === "unavailable") return;
  setTimeout(tick, 2);
};
tick();
"""


# ------------------------------------------------------------------------------------------------ CPU clocks


def process_cpu_seconds(processes) -> float:
    import psutil

    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def chromium_processes():
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]


def worker_threads():
    """Chromium's dedicated-worker threads (Linux /proc): the thread that runs worker.js's decoding loop."""
    found = []
    for process in chromium_processes():
        for task in Path(f"/proc/{process.pid}/task").glob("*"):
            try:
                if (task / "comm").read_text().startswith("DedicatedWorker"):
                    found.append(task)
            except OSError:
                pass
    return found


def thread_cpu_seconds(tasks) -> float:
    """utime + stime of these threads, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for task in tasks:
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        except (OSError, IndexError, ValueError):
            pass
    return total / ticks


# ---------------------------------------------------------------------------------------------------- cases


class Eager:
    """PyTorch's generate() in this process, one thread."""

    def __init__(self, model_dir: str):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(1)
        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
        self.inputs = self.tokenizer(PROMPT, return_tensors="pt")
        self.run(20)  # warm-up

    def run(self, tokens: int) -> dict:
        with self.torch.inference_mode():
            wall, cpu = time.perf_counter(), time.process_time()
            out = self.model.generate(**self.inputs, max_new_tokens=tokens, do_sample=False)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {"s": wall, "cpu_s": cpu, "text": self.tokenizer.decode(out[0])}


class Server:
    """One /generate request through gradio's queue, as a browser's page makes it."""

    def __init__(self, server):
        import psutil

        self.server = server
        self.fn = fn_index(server.config(), "generate")
        self.process = psutil.Process(server.pid)
        self.run(20)  # warm-up

    def run(self, tokens: int) -> dict:
        cpu = process_cpu_seconds([self.process])
        record = stream_generate(self.server.url, [PROMPT, tokens, 0.0, 0, 1.0, 0], self.fn, timeout=600)
        cpu = process_cpu_seconds([self.process]) - cpu
        assert record["error"] is None, record["error"]
        first = next(t for t, text in record["texts"] if len(text) > len(PROMPT))
        return {"s": record["completed"], "cpu_s": cpu, "first_char_ms": 1000 * first, "text": record["final"]}


class Browser:
    """The demo's page in Chromium, writing in its worker."""

    def __init__(self, page):
        self.page = page
        self.processes, self.workers = chromium_processes(), worker_threads()

    def run(self, tokens: int) -> dict:
        page = self.page
        page.evaluate("tinygptBrowser.last = null")
        cpu, worker_cpu = process_cpu_seconds(self.processes), thread_cpu_seconds(self.workers)
        page.click("#generate-btn")
        page.wait_for_function("tinygptBrowser.last", timeout=600_000, polling=100)  # not every frame: less noise
        cpu, worker_cpu = process_cpu_seconds(self.processes) - cpu, thread_cpu_seconds(self.workers) - worker_cpu
        last = page.evaluate("tinygptBrowser.last")
        assert last["count"] == tokens, last
        return {"s": last["ms"] / 1000, "cpu_s": cpu, "worker_cpu_s": worker_cpu,
                "text": page.input_value("#output textarea")}


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def open_page_and_time_the_first_character(chromium, server, tokens: int, window_graph: bool = True):
    """A fresh page, Generate clicked the moment the browser is ready: the page and its first-visit timings.
    `window_graph=False`: the page is told there is no window graph (the decoder then runs the window)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})  # an empty browser cache
    page = context.new_page()
    if not window_graph:
        page.route("**/tinygpt-web/manifest.json", lambda route: route.fulfill(json={**route.fetch().json(),
                                                                                      "window": None}))
    page.add_init_script(CLICK_WHEN_READY)
    page.goto(server.url)
    page.wait_for_selector("#prompt textarea")
    page.fill("#prompt textarea", PROMPT)
    set_number(page, "max-new-tokens", tokens)
    set_number(page, "temperature", 0)
    page.evaluate("window.__armed = true")
    page.wait_for_function("window.tinygptBrowser && window.tinygptBrowser.state !== 'loading'", timeout=600_000)
    state = page.evaluate("[tinygptBrowser.state, tinygptBrowser.reason]")
    if state[0] != "ready":
        raise SystemExit(f"the browser cannot write: {state[1]}")
    page.wait_for_function("tinygptBrowser.last", timeout=600_000)  # the first generation is done
    timings, last = page.evaluate("tinygptBrowser.timings"), page.evaluate("tinygptBrowser.last")
    return page, {
        "page_load_to_first_char_ms": timings["firstCharAt"],  # performance.now(): ms since the navigation started
        "navigation_to_ready_ms": timings["readyAt"],
        "runtime_model_sessions_ms": timings["loadMs"],
        "warm_up_ms": timings["warmUp"]["ms"], "warm_up_steps": timings["warmUp"]["steps"],
        "click_to_first_char_ms": timings["firstCharAt"] - page.evaluate("window.__clickedAt"),
        "first_text_chars_per_s": 1000 * last["count"] / last["ms"],
        "user_agent": page.evaluate("navigator.userAgent"),
    }


# ------------------------------------------------------------------------------------------------------ main


def summarise(rounds: list[dict], tokens: int) -> dict:
    def median(case, key):
        values = [r[case][key] for r in rounds if r[case].get(key)]
        return statistics.median(values) if values else None

    summary = {}
    for case in rounds[0]:
        row = {"chars_per_s": tokens / median(case, "s"), "chars_per_cpu_s": tokens / median(case, "cpu_s")}
        for baseline in ("server", "eager"):  # rate ratio in each round = baseline time / case time
            row[f"vs_{baseline}"] = statistics.median(r[baseline]["s"] / r[case]["s"] for r in rounds)
        summary[case] = row
    for case in rounds[0]:
        if case.startswith("browser"):
            summary[case]["chars_per_worker_cpu_s"] = tokens / median(case, "worker_cpu_s")
    summary["server"]["first_char_ms"] = median("server", "first_char_ms")
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "checkpoints" / "tinyshakespeare"))
    parser.add_argument("--tokens", type=int, default=1000, help="new characters per request (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the three cases (default 5)")
    parser.add_argument("--json", help="also write the numbers (every round) to this file")
    args = parser.parse_args(argv)
    executable = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        env = app_env(XDG_CACHE_HOME=str(Path(tmp) / "cache"))  # an empty export cache: the first request shows it
        with AppServer(["--model", args.model], Path(tmp) / "server.log", env=env, timeout=300) as server, \
                sync_playwright() as playwright:
            import httpx

            started = time.perf_counter()
            manifest = httpx.get(server.url + "/tinygpt-web/manifest.json", timeout=900).json()
            manifest_s = time.perf_counter() - started
            if not manifest["available"]:
                raise SystemExit(f"the browser cannot write: {manifest['reason']}")
            chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page, first = open_page_and_time_the_first_character(chromium, server, args.tokens)
            cases = {"browser": Browser(page)}
            if manifest.get("window"):  # the same page without the window's graph: what that graph buys
                cases["browser_decoder_only"] = Browser(open_page_and_time_the_first_character(
                    chromium, server, args.tokens, window_graph=False)[0])
            cases.update(server=Server(server), eager=Eager(args.model))
            rounds = []
            for _ in range(args.rounds):
                rounds.append({name: case.run(args.tokens) for name, case in cases.items()})
            chromium.close()
    load_after = os.getloadavg()

    texts = {name: {r[name]["text"] for r in rounds} for name in cases}
    texts["browser"] |= texts.pop("browser_decoder_only", set())  # one greedy text, whichever graph wrote it
    summary = summarise(rounds, args.tokens)
    results = {
        "model": args.model, "tokens": args.tokens, "rounds": args.rounds, "prompt": PROMPT,
        "export": {"bytes": manifest["model"]["bytes"], "origin": manifest["model"]["origin"],
                   "window_bytes": (manifest.get("window") or {}).get("bytes"), "first_manifest_s": manifest_s},
        "first_visit": first, "summary": summary,
        "browser_equals_server": texts["browser"] == texts["server"] and len(texts["browser"]) == 1,
        "server_equals_pytorch": texts["server"] == texts["eager"],
        "loadavg_before_after": [load_before, load_after], "cpus": os.cpu_count(),
        "every_round": [{name: {k: v for k, v in r[name].items() if k != "text"} for name in r} for r in rounds],
    }
    b, s, e = summary["browser"], summary["server"], summary["eager"]
    print(f"model {args.model}: {args.tokens} greedy characters from {PROMPT!r}, {args.rounds} interleaved rounds; "
          f"load average {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} CPUs")
    window = results["export"]["window_bytes"]
    print(f"export: {results['export']['bytes']:,} bytes ({results['export']['bytes'] / 1e6:.2f} MB), "
          f"{results['export']['origin']}; the window's graph: "
          f"{f'{window:,} bytes' if window else 'none (the decoder runs the window)'}; first manifest {manifest_s:.1f} s")
    print(f"page load -> first character in the browser: {first['page_load_to_first_char_ms']:.0f} ms (navigation "
          f"-> ready {first['navigation_to_ready_ms']:.0f} ms, of which runtime + model + sessions "
          f"{first['runtime_model_sessions_ms']:.0f} ms and warm-up {first['warm_up_ms']:.0f} ms "
          f"({first['warm_up_steps']} steps); click -> first character {first['click_to_first_char_ms']:.0f} ms); "
          f"that first text {first['first_text_chars_per_s']:.0f} chars/s")
    print(f"{'median of rounds':<30}{'chars/s':>9}{'chars/CPU-s':>13}{'vs server':>11}{'vs eager':>10}")
    names = {"browser": "browser (WASM, 1 thread)", "browser_decoder_only": "  without the window graph",
             "server": "server, one request", "eager": "PyTorch eager, 1 thread"}
    for case, row in summary.items():
        print(f"{names[case]:<30}{row['chars_per_s']:>9.0f}{row['chars_per_cpu_s']:>13.0f}{row['vs_server']:>10.2f}x"
              f"{row['vs_eager']:>9.2f}x")
    alone = "; ".join(f"{names[case].strip()}: {row['chars_per_worker_cpu_s']:.0f}" for case, row in summary.items()
                      if case.startswith("browser"))
    print(f"the worker thread alone, chars per CPU-second: {alone}; the server's first character after "
          f"{s['first_char_ms']:.0f} ms")
    print(f"browser greedy text == server's: {results['browser_equals_server']}; server's == PyTorch's: "
          f"{results['server_equals_pytorch']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if results["browser_equals_server"] and results["server_equals_pytorch"] else 1


if __name__ == "__main__":
    sys.exit(main())
