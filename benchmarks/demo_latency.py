"""Numbers for the demo: time to first streamed character, characters per second, server memory.

    python benchmarks/demo_latency.py [--model DIR] [--clients 8] [--tokens 500] [--runs 20]

Starts `python app.py` in a subprocess (a tiny random model unless --model is given), then talks to it through
gradio's raw queue protocol (tests/app_helpers.py: stream_generate), so every timing includes the HTTP round
trips and gradio's queue, as a browser sees them:

* time to first character: from sending the request to receiving the first generated character (median, p90);
* characters per second: one stream alone, and all streams together with `--clients` at once;
* RSS of the server process: idle after warm-up, and the peak while `--clients` streams run.

    python benchmarks/demo_latency.py --train [--model DIR] [--sessions 4] [--session-seconds 15]

measures the Train tab instead (the bundled model and tiny Shakespeare, the tab's default settings, via /train):

* time to val <= 2.0: from submitting /train to the streamed update that carries the first evaluation at or below
  2.0, and the engine's own elapsed time of that evaluation; also in CPU terms (the server process's CPU time over
  the same span, every thread), which a busy machine inflates far less than the wall clock;
* time to first character of /generate (another session) with no training running, then while one runs (from
  the update that shows val <= 2.0 on);
* RSS of the server with `--sessions` trained sessions: each trains for `--session-seconds` (queued one after
  another with the default `--train-concurrency 1`, at once with 4), the peak over all of it and what is held once
  they are done.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the demo tests' server helpers

from app_helpers import AppServer, app_env, fn_index, make_model_dir, rss_mib, stream_generate  # noqa: E402

PROMPT = "ROMEO:\n"


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_char_seconds(record, prompt=PROMPT) -> float:
    return next(t for t, text in record["texts"] if len(text) > len(prompt))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="tinygpt folder or repo id (default: a tiny random model, 64 wide)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--runs", type=int, default=20, help="requests for the time-to-first-character statistics")
    parser.add_argument("--threads", type=int, default=None, help="pass --threads N to app.py")
    parser.add_argument("--train", action="store_true", help="measure the Train tab instead (see above)")
    parser.add_argument("--sessions", type=int, default=4, help="--train: trained sessions for the memory figure")
    parser.add_argument("--session-seconds", type=float, default=15, help="--train: budget of each of those")
    parser.add_argument("--train-concurrency", type=int, default=1,
                        help="--train: pass --train-concurrency N to app.py (N > 1: the sessions train at once)")
    args = parser.parse_args(argv)
    if args.train:
        return train_benchmark(args)

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(make_model_dir(Path(tmp) / "model", n_embd=64, n_head=4, n_layer=2, block_size=32))
        server_args = ["--model", model] + (["--threads", str(args.threads)] if args.threads else [])
        with AppServer(server_args, Path(tmp) / "server.log", env=app_env()) as server:
            fn = fn_index(server.config(), "generate")
            for _ in range(3):  # warm-up: first-call costs (imports, allocator) are not what users see later
                stream_generate(server.url, [PROMPT, 50, 0.8, 0, 1.0, 0], fn)
            idle = rss_mib(server.pid)

            ttfc = []
            for seed in range(args.runs):
                ttfc.append(first_char_seconds(stream_generate(server.url, [PROMPT, 20, 0.8, 0, 1.0, seed], fn)))
                time.sleep(0.05)
            ttfc.sort()
            alone = stream_generate(server.url, [PROMPT, args.tokens, 0.8, 0, 1.0, 1], fn)
            alone_rate = args.tokens / (alone["texts"][-1][0] - first_char_seconds(alone))

            peak = [idle]
            done = threading.Event()

            def watch():
                while not done.is_set():
                    peak.append(rss_mib(server.pid))
                    time.sleep(0.02)

            watcher = threading.Thread(target=watch)
            watcher.start()
            barrier = threading.Barrier(args.clients)

            def one(seed):
                barrier.wait()
                return stream_generate(server.url, [PROMPT, args.tokens, 0.8, 0, 1.0, seed], fn)

            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                records = list(pool.map(one, range(args.clients)))
            wall = time.perf_counter() - t0
            done.set()
            watcher.join()
            busy_ttfc = sorted(first_char_seconds(r) for r in records)

    threads = f", app.py --threads {args.threads}" if args.threads else ""
    print(f"model: {args.model or 'tiny random (n_embd 64, 2 layers, 4 heads, block 32)'}{threads}")
    print(
        f"time to first character, alone: median {statistics.median(ttfc) * 1000:.1f} ms, "
        f"p90 {ttfc[int(0.9 * (len(ttfc) - 1))] * 1000:.1f} ms, min {ttfc[0] * 1000:.1f} ms ({len(ttfc)} requests)"
    )
    print(f"characters/s, one stream alone: {alone_rate:.0f}")
    print(
        f"{args.clients} clients at once: {args.clients * args.tokens / wall:.0f} characters/s in total "
        f"({args.clients * args.tokens / wall / args.clients:.0f} per client), first character after "
        f"median {statistics.median(busy_ttfc) * 1000:.0f} ms, worst {busy_ttfc[-1] * 1000:.0f} ms"
    )
    print(f"server RSS: idle {idle:.0f} MiB, peak with {args.clients} clients {max(peak):.0f} MiB")
    return 0


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    return (f"median {statistics.median(values) * 1000:.0f} ms, p90 {values[int(0.9 * (len(values) - 1))] * 1000:.0f} ms, "
            f"max {values[-1] * 1000:.0f} ms ({len(values)} requests)")


def train_benchmark(args) -> int:
    from gradio_client import Client

    repo = Path(__file__).resolve().parents[1]
    text = (repo / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        server_args = (["--model", args.model] if args.model else []) + (["--threads", str(args.threads)] if args.threads else [])
        server_args += ["--train-concurrency", str(args.train_concurrency)]
        with AppServer(server_args, Path(tmp) / "server.log", env=app_env(TMPDIR=tmp)) as server:
            fn = fn_index(server.config(), "generate")
            for _ in range(3):
                stream_generate(server.url, [PROMPT, 50, 0.8, 0, 1.0, 0], fn)
            idle_rss = rss_mib(server.pid)

            def latencies(n: int) -> list[float]:
                out = []
                for seed in range(n):
                    out.append(first_char_seconds(stream_generate(server.url, [PROMPT, 20, 0.8, 0, 1.0, seed], fn)))
                    time.sleep(0.2)
                return out

            alone = latencies(args.runs)

            # One training with the tab's defaults; Generate from another session while it runs.
            trainer = Client(server.url, verbose=False)
            arrivals = []  # (seconds since submit, server CPU seconds since submit, update) as they arrive
            t0, cpu0 = time.perf_counter(), cpu_seconds(server.pid)
            job = trainer.submit(text, api_name="/train")

            def follow():
                for update in job:
                    arrivals.append((time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0, update))

            follower = threading.Thread(target=follow)
            follower.start()
            # Generate's latency while it trains, measured once the page has shown val <= 2.0 (or after 60 s), so that
            # those requests do not share the CPU with the training during the time to val <= 2.0 itself
            while not any(e["val_loss"] <= 2.0 for _, _, u in arrivals for e in u["evaluations"]) and \
                    time.perf_counter() - t0 < 60 and not job.done():
                time.sleep(0.05)
            during = latencies(args.runs)
            job.result(timeout=600)
            follower.join()
            wall = time.perf_counter() - t0
            final = job.outputs()[-1]
            to_two = engine_to_two = cpu_to_two = None
            for seconds, cpu, update in arrivals:  # the first update that shows an evaluation at or below 2.0
                below = [e for e in update["evaluations"] if e["val_loss"] <= 2.0]
                if below:
                    to_two, engine_to_two, cpu_to_two, step_two = seconds, below[0]["elapsed_s"], cpu, below[0]["step"]
                    break
            points = [(e["step"], e["elapsed_s"]) for e in final["evaluations"]]

            # Memory: `--sessions` sessions each train and keep their model.
            peak = [rss_mib(server.pid)]
            done = threading.Event()

            def watch():
                while not done.is_set():
                    peak.append(rss_mib(server.pid))
                    time.sleep(0.05)

            watcher = threading.Thread(target=watch)
            watcher.start()
            clients = [Client(server.url, verbose=False) for _ in range(args.sessions)]
            jobs = [c.submit(text, api_name="/train", seconds=args.session_seconds) for c in clients]
            for j in jobs:
                j.result(timeout=600)
            held = rss_mib(server.pid)
            done.set()
            watcher.join()
            for c in clients:  # each session's Generate uses its own model
                c.predict(PROMPT, 20, 0.8, 0, 1.0, 0, api_name="/generate")

    threads = f", app.py --threads {args.threads}" if args.threads else ""
    print(f"model: {args.model or 'the bundled checkpoints/tinyshakespeare'}{threads}; training: tiny Shakespeare, "
          "the Train tab's defaults (cpu preset, seed model, 60 s)")
    print(f"training: {final['status']} at step {final['step']} of {final['max_iters']}, val {final['evaluations'][-1]['val_loss']:.3f}, "
          f"{wall:.1f} s from submit to the end")
    if to_two is None:
        print("time to val <= 2.0: not reached")
    else:
        print(f"time to val <= 2.0: {to_two:.1f} s from submit ({engine_to_two:.1f} s of training by the engine's clock), "
              f"at step {step_two}; the server used {cpu_to_two:.1f} s of CPU meanwhile (load average "
              f"{os.getloadavg()[0]:.1f} at the end)")
    print(f"evaluations (step: engine s): {', '.join(f'{step}: {s:.1f}' for step, s in points)}")
    print(f"time to first character, no training running: {percentiles(alone)}")
    print(f"time to first character, while one training runs: {percentiles(during)}")
    how = "queued" if args.train_concurrency == 1 else f"{min(args.train_concurrency, args.sessions)} at once"
    print(f"server RSS: idle {idle_rss:.0f} MiB; {args.sessions} sessions trained ({args.session_seconds:g} s each, {how}): "
          f"peak {max(peak):.0f} MiB, {held:.0f} MiB holding the {args.sessions} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
