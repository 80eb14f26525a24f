"""The server's CPU per execute request, in process: what a submit costs, whatever the load.

Usage: python benchmarks/submit_cpu.py [--requests 500] [--rounds 3]

Calls the service's ASGI application directly (no sockets, no HTTP parser: uvicorn's part
is not in these numbers) with ``extract`` execute requests on the sample provider, a new
geometry each, and prints the process's CPU time (every thread: the event loop's and the
worker threads' that validate and store the jobs) and the wall time per request: one
request after the other, then all of a round at once (as a burst of clients sends them).
No job computes: the one job thread is kept busy by a ``sleep_a_while`` job, so the
``extract`` jobs wait in the queue. CPU time is steadier than wall time on a shared
machine; medians of ``--rounds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import cas_xr as cas
from cas_xr.service import create_app


def _body(i: int) -> bytes:
    lon, lat = -96.69 + 0.0037 * (i % 100), 38.82 + 0.0041 * (i // 100 % 50)
    ring = [[lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01], [lon, lat + 0.01], [lon, lat]]
    inputs = {"geometry": {"type": "Polygon", "coordinates": [ring]},
              "dataset_ids": ["sample:elevation", "sample:land_cover"]}  # fmt: skip
    return json.dumps({"inputs": inputs}).encode()


def _caller(app: Any) -> Callable[[str, bytes], Awaitable[int]]:
    async def call(process: str, body: bytes) -> int:
        path = f"/processes/{process}/execution"
        headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]  # fmt: skip
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
        }  # fmt: skip
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = 0

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(3600)  # the request is over: no disconnect while it runs
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    return call


async def _measure(n: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = cas.Settings(jobs_db=f"{tmp}/jobs.sqlite", job_workers=1, job_processes=0)
        app = create_app(settings, testing=True)
        call = _caller(app)
        async with app.router.lifespan_context(app):
            # the one job thread sleeps: the extract jobs wait in the queue, none computes
            await call("sleep_a_while", json.dumps({"inputs": {"duration": 3600}}).encode())
            assert await call("extract", _body(10**6)) == 201  # unmeasured: loads the catalog
            rows: dict[str, list[float]] = {}
            for r in range(rounds):
                bodies = [_body(r * n + i) for i in range(n)]
                for mode in ("one_by_one", "burst"):
                    cpu, wall = time.process_time(), time.perf_counter()
                    if mode == "one_by_one":
                        codes = [await call("extract", body) for body in bodies]
                    else:
                        codes = await asyncio.gather(*(call("extract", body) for body in bodies))
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                    assert set(codes) == {201}, codes
                    rows.setdefault(f"{mode}_cpu_ms", []).append(1000 * cpu / n)
                    rows.setdefault(f"{mode}_wall_ms", []).append(1000 * wall / n)
    return {name: statistics.median(values) for name, values in rows.items()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    row = asyncio.run(_measure(args.requests, args.rounds))
    print("## submit CPU: extract execute requests through the ASGI app, per request\n")
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")
    return row


if __name__ == "__main__":
    main()
    sys.exit(0)
