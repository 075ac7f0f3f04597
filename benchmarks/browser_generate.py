"""Generate in the visitor's browser against the server and PyTorch, on one machine in one run.

    python benchmarks/browser_generate.py [--model DIR] [--tokens 1000] [--runs 3] [--json FILE]

Starts `python app.py --model DIR` (default: the bundled checkpoint, block 32, 2 layers, 64 wide) with an empty ONNX
cache, drives a headless Chromium (/usr/bin/chromium, or $CHROMIUM_PATH) against it with Playwright, and measures,
all greedy (temperature 0) from "ROMEO:\\n":

* the export: its size, where it came from (the model's own onnx/model.onnx, or exported on the first request) and
  how long the first /tinygpt-web/manifest.json took (that includes the export when one is made);
* page load to the first character written in the browser: a fresh page (empty browser cache), the prompt typed
  while the model loads, Generate clicked by the page itself the moment the browser is ready; split into
  navigation -> ready (runtime, model and session loaded) and click -> first character;
* characters per second in the browser (onnxruntime-web, WebAssembly, 1 thread): `--tokens` new characters after
  the worker's warm-up, `--runs` times; wall time as the worker measures it, per CPU-second of all Chromium
  processes (what the visitor's machine spends), and per CPU-second of the worker thread alone (the decoding loop;
  /proc's per-thread times: what an idle core would give);
* the server's per-request rate: /generate through gradio's queue (tests/app_helpers.py: stream_generate), the
  same request, `--runs` times, request to last character; and per CPU-second of the server process;
* PyTorch eager: `model.generate` in this process, 1 thread, the same request (wall and process CPU time);
* that the browser's greedy text equals the server's.

On a shared machine wall times move with the load; the CPU-second rates much less (the load average is printed).
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
# In the page, before anything loads: once the test has typed the request (window.__armed), click Generate the
# moment the browser is ready, so that "page load to first character" has no polling from outside in it.
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


def cpu_seconds(processes) -> float:
    import psutil

    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


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


def chromium_processes():
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def set_request(page, tokens: int) -> None:
    page.fill("#prompt textarea", PROMPT)
    set_number(page, "max-new-tokens", tokens)
    set_number(page, "temperature", 0)


def pytorch_eager(model_dir: str, tokens: int, runs: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    inputs = tokenizer(PROMPT, return_tensors="pt")
    walls, cpus = [], []
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=20, do_sample=False)  # warm-up
        for _ in range(runs):
            wall, cpu = time.perf_counter(), time.process_time()
            out = model.generate(**inputs, max_new_tokens=tokens, do_sample=False)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    text = tokenizer.decode(out[0])
    return {"chars_per_s": tokens / statistics.median(walls), "chars_per_cpu_s": tokens / statistics.median(cpus),
            "text": text}


def server_rate(server, tokens: int, runs: int) -> dict:
    import psutil

    fn = fn_index(server.config(), "generate")
    stream_generate(server.url, [PROMPT, 20, 0.0, 0, 1.0, 0], fn)  # warm-up
    process = psutil.Process(server.pid)
    walls, cpus, first = [], [], []
    for _ in range(runs):
        cpu = cpu_seconds([process])
        record = stream_generate(server.url, [PROMPT, tokens, 0.0, 0, 1.0, 0], fn)
        cpus.append(cpu_seconds([process]) - cpu)
        assert record["error"] is None, record["error"]
        walls.append(record["completed"])
        first.append(next(t for t, text in record["texts"] if len(text) > len(PROMPT)))
    return {"chars_per_s": tokens / statistics.median(walls), "chars_per_cpu_s": tokens / statistics.median(cpus),
            "first_char_ms": 1000 * statistics.median(first), "text": record["final"]}


def browser(server, executable: str | None, tokens: int, runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = chromium.new_context(viewport={"width": 1280, "height": 1000})  # empty cache
            page = context.new_page()
            page.add_init_script(CLICK_WHEN_READY)
            page.goto(server.url)
            page.wait_for_selector("#prompt textarea")
            set_request(page, tokens)
            page.evaluate("window.__armed = true")
            page.wait_for_function("window.tinygptBrowser && window.tinygptBrowser.state !== 'loading'",
                                   timeout=300_000)
            state = page.evaluate("[tinygptBrowser.state, tinygptBrowser.reason]")
            if state[0] != "ready":
                raise SystemExit(f"the browser cannot write: {state[1]}")
            page.wait_for_function("tinygptBrowser.last", timeout=300_000)  # the first (cold) generation is done
            timings = page.evaluate("tinygptBrowser.timings")
            cold = page.evaluate("tinygptBrowser.last")
            manifest = page.evaluate("tinygptBrowser.manifest")
            first = {
                "navigation_to_ready_ms": timings["readyAt"],
                "click_to_first_char_ms": timings["firstCharAt"] - page.evaluate("window.__clickedAt"),
                "page_load_to_first_char_ms": timings["firstCharAt"],
                "session_load_ms": timings["loadMs"],
                "warm_up_ms": timings["warmUp"]["ms"], "warm_up_steps": timings["warmUp"]["steps"],
                "cold_generation_chars_per_s": 1000 * cold["count"] / cold["ms"],
            }
            processes, workers = chromium_processes(), worker_threads()
            walls, cpus, worker_cpus = [], [], []
            for _ in range(runs):
                page.evaluate("tinygptBrowser.last = null")
                cpu, worker_cpu = cpu_seconds(processes), thread_cpu_seconds(workers)
                page.click("#generate-btn")
                page.wait_for_function("tinygptBrowser.last", timeout=300_000)
                cpus.append(cpu_seconds(processes) - cpu)
                worker_cpus.append(thread_cpu_seconds(workers) - worker_cpu)
                last = page.evaluate("tinygptBrowser.last")
                assert last["count"] == tokens, last
                walls.append(last["ms"] / 1000)
            text = page.input_value("#output textarea")
            return {"chars_per_s": tokens / statistics.median(walls), "chars_per_cpu_s": tokens / statistics.median(cpus),
                    "chars_per_worker_cpu_s": tokens / statistics.median(worker_cpus) if workers else None,
                    "worker_threads": len(workers), "first": first, "warm_up": timings.get("warmUp"), "manifest": manifest, "text": text,
                    "user_agent": page.evaluate("navigator.userAgent")}
        finally:
            chromium.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "checkpoints" / "tinyshakespeare"))
    parser.add_argument("--tokens", type=int, default=1000, help="new characters per request (default 1000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    executable = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        env = app_env(XDG_CACHE_HOME=str(Path(tmp) / "cache"))  # an empty export cache: the first request shows it
        with AppServer(["--model", args.model], Path(tmp) / "server.log", env=env, timeout=180) as server:
            import httpx

            started = time.perf_counter()
            manifest = httpx.get(server.url + "/tinygpt-web/manifest.json", timeout=600).json()
            manifest_s = time.perf_counter() - started
            if not manifest["available"]:
                raise SystemExit(f"the browser cannot write: {manifest['reason']}")
            web = browser(server, executable, args.tokens, args.runs)
            served = server_rate(server, args.tokens, args.runs)
    eager = pytorch_eager(args.model, args.tokens, args.runs)
    load_after = os.getloadavg()

    results = {
        "model": args.model, "tokens": args.tokens, "runs": args.runs,
        "export": {"bytes": manifest["model"]["bytes"], "origin": manifest["model"]["origin"],
                   "first_manifest_s": manifest_s},
        "browser": {k: v for k, v in web.items() if k not in ("text", "manifest")},
        "server": {k: v for k, v in served.items() if k != "text"},
        "pytorch_eager": {k: v for k, v in eager.items() if k != "text"},
        "browser_equals_server": web["text"] == served["text"],
        "server_equals_pytorch": served["text"] == eager["text"],
        "loadavg_before_after": [load_before, load_after], "cpus": os.cpu_count(),
    }
    b, s, e = results["browser"], results["server"], results["pytorch_eager"]
    print(f"model {args.model}: {args.tokens} greedy characters, median of {args.runs}; load average "
          f"{load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"export: {results['export']['bytes'] / 1e6:.2f} MB, {results['export']['origin']}; first manifest "
          f"{manifest_s:.1f} s")
    first = b["first"]
    print(f"page load -> first character in the browser: {first['page_load_to_first_char_ms']:.0f} ms "
          f"(navigation -> ready {first['navigation_to_ready_ms']:.0f} ms, of which runtime + model + sessions "
          f"{first['session_load_ms']:.0f} ms and warm-up {first['warm_up_ms']:.0f} ms ({first['warm_up_steps']} steps); "
          f"click -> first character {first['click_to_first_char_ms']:.0f} ms); "
          f"that first generation {first['cold_generation_chars_per_s']:.0f} chars/s")
    print(f"{'':<28}{'chars/s':>10}{'chars/CPU-s':>13}{'vs server':>11}{'vs eager':>10}")
    for name, row in (("browser (WASM, 1 thread)", b), ("server, one request", s), ("PyTorch eager, 1 thread", e)):
        print(f"{name:<28}{row['chars_per_s']:>10.0f}{row['chars_per_cpu_s']:>13.0f}"
              f"{row['chars_per_s'] / s['chars_per_s']:>10.2f}x{row['chars_per_s'] / e['chars_per_s']:>9.2f}x")
    if b["chars_per_worker_cpu_s"]:
        print(f"browser, the worker thread alone: {b['chars_per_worker_cpu_s']:.0f} chars per CPU-second "
              f"({b['worker_threads']} DedicatedWorker thread(s))")
    print(f"browser greedy text == server's: {results['browser_equals_server']}; server's == PyTorch's: "
          f"{results['server_equals_pytorch']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if results["browser_equals_server"] else 1


if __name__ == "__main__":
    sys.exit(main())
