"""Model-provider speed: concurrency against a slow endpoint, the response cache, batched hf generation.

1. A local OpenAI-compatible server answers every chat completion after a fixed 50 ms.
   The same 200-scenario catalog runs serially and with ``--autoevolve-concurrency 32``
   (cache off); the speed-up of the model-call time (a run's time less that of a run with no
   model calls) is compared with the ideal 32x.
2. The first run with the cache on, then a re-run: wall times, their ratio, and the model
   calls the server saw during the re-run (should be zero).
3. The shipped ``tiny`` model answers the 240 eval prompts one by one, then from 32 threads
   (batched into shared ``generate`` calls): wall times and ratio.

    python benchmarks/bench_providers.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from catalogs import write_say_catalog

from pytest_autoevolve.providers.base import ModelRequest

SCENARIOS = 200
LATENCY_S = 0.05


class SlowServer(BaseHTTPRequestHandler):
    calls = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with SlowServer.lock:
            SlowServer.calls += 1
        time.sleep(LATENCY_S)
        answer = body["messages"][-1]["content"].split()[-1]
        payload = json.dumps(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def run(folder: Path, port: int, *extra: str) -> float:
    env = {**os.environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": "bench"}
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--autoevolve",
            "--autoevolve-incumbent",
            "openai:bench-a",
            "--autoevolve-candidate",
            "openai:bench-b",
            *extra,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - started


def endpoint_benchmarks() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowServer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_say_catalog(folder, SCENARIOS)
        trials = SCENARIOS * 2
        serial = run(folder, port, "--autoevolve-cache", "off")
        concurrent = run(folder, port, "--autoevolve-cache", "off", "--autoevolve-concurrency", "32")
        first = run(folder, port)
        before = SlowServer.calls
        cached = run(folder, port)
        calls = SlowServer.calls - before
        # the cached re-run is everything but the model calls: start-up, collection, grading, reports
        speedup = (serial - cached) / (concurrent - cached)
        ideal = min(32, trials)
        print(
            f"endpoint {LATENCY_S * 1000:.0f} ms/call, {trials} trials: serial {serial:.2f} s, "
            f"concurrency 32 {concurrent:.2f} s (whole runs: {serial / concurrent:.1f}x)"
        )
        print(
            f"  model-call time (run minus the {cached:.2f} s of a run without calls): {serial - cached:.2f} s -> "
            f"{concurrent - cached:.2f} s = {speedup:.1f}x of an ideal {ideal}x ({speedup / ideal:.0%})"
        )
        print(
            f"cache: first run {first:.2f} s, cached re-run {cached:.2f} s -> {first / cached:.1f}x faster, "
            f"{calls} model calls during the re-run"
        )
    server.shutdown()


def batching_benchmark() -> None:
    from pytest_autoevolve.providers.base import ModelSpec
    from pytest_autoevolve.providers.hf import HFModel
    from pytest_autoevolve.tiny import TINY_DIR
    from pytest_autoevolve.tiny.demo import splits

    prompts = [p.prompt for p in splits()[0]]
    model = HFModel.load(ModelSpec("hf", str(TINY_DIR)), Path.cwd())

    def ask(prompt: str) -> str:
        return model.generate(ModelRequest([{"role": "user", "content": prompt}], 0, 0)).output

    ask(prompts[0])
    started = time.perf_counter()
    alone = [ask(p) for p in prompts]
    one_by_one = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        together = list(pool.map(ask, prompts))
    batched = time.perf_counter() - started
    sizes = model._batcher.batches[len(prompts) + 1 :]
    print(
        f"hf tiny, {len(prompts)} prompts on the CPU: one by one {one_by_one:.2f} s, batched {batched:.2f} s "
        f"-> {one_by_one / batched:.1f}x; mean batch {sum(sizes) / len(sizes):.1f}; "
        f"identical replies: {alone == together}"
    )


if __name__ == "__main__":
    endpoint_benchmarks()
    batching_benchmark()
