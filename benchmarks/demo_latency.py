"""Numbers for the demo: time to first streamed character, characters per second, server memory.

    python benchmarks/demo_latency.py [--model DIR] [--clients 8] [--tokens 500] [--runs 20]

Starts `python app.py` in a subprocess (a tiny random model unless --model is given), then talks to it through
gradio's raw queue protocol (tests/app_helpers.py: stream_generate), so every timing includes the HTTP round
trips and gradio's queue, as a browser sees them:

* time to first character: from sending the request to receiving the first generated character (median, p90);
* characters per second: one stream alone, and all streams together with `--clients` at once;
* RSS of the server process: idle after warm-up, and the peak while `--clients` streams run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the demo tests' server helpers

from app_helpers import AppServer, app_env, fn_index, make_model_dir, rss_mib, stream_generate  # noqa: E402

PROMPT = "ROMEO:\n"


def first_char_seconds(record, prompt=PROMPT) -> float:
    return next(t for t, text in record["texts"] if len(text) > len(prompt))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="tinygpt folder or repo id (default: a tiny random model, 64 wide)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--runs", type=int, default=20, help="requests for the time-to-first-character statistics")
    parser.add_argument("--threads", type=int, default=None, help="pass --threads N to app.py")
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
