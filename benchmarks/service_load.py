"""Load test of the service: concurrent `extract` requests on the sample provider, loopback only.

Usage: python benchmarks/service_load.py [--requests 200] [--timeout 300]

Starts `cas-xr serve` on a free port of 127.0.0.1 with a temporary job database, sends
``--requests`` extract requests at once through cas_xr's AsyncClient (each a different
geometry near lon -96.5 lat 39.0, so no answer comes from the result cache), waits for
every job, and prints latency percentiles (submit to results) and throughput. It then
checks that nothing was lost: every request has a successful job in ``/jobs``. Bounded:
the whole run stops after ``--timeout`` seconds, and the server is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from cas_xr.client import AsyncClient


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAS_")}
    env["CAS_JOBS_DB"] = str(folder / "jobs.sqlite")
    command = [sys.executable, "-m", "cas_xr", "serve", "--port", str(port)]
    log = (folder / "serve.log").open("wb")
    server = subprocess.Popen([*command, "--log-level", "warning"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            httpx.get(url + "conformance", timeout=2)
            return server, url
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"the server did not start: {(folder / 'serve.log').read_text()[-2000:]}")


def _request(i: int) -> dict[str, Any]:
    lon, lat = -96.69 + 0.0037 * (i % 100), 38.82 + 0.0041 * (i // 100)
    if i % 2:
        return {"geometry": {"type": "Point", "coordinates": [lon, lat]},
                "dataset_ids": ["sample:elevation", "sample:clay_0-5cm"]}  # fmt: skip
    ring = [[lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01], [lon, lat + 0.01], [lon, lat]]
    return {"geometry": {"type": "Polygon", "coordinates": [ring]},
            "dataset_ids": ["sample:elevation", "sample:land_cover"]}  # fmt: skip


async def _run(url: str, n: int, users: int) -> tuple[list[float], list[str], float]:
    # one client (a connection pool) per user, as separate users have; one pool of n
    # connections would measure httpcore's pool bookkeeping, which grows with its size
    clients = [
        AsyncClient(api_url=url, transport=httpx.AsyncHTTPTransport(), timeout=120)
        for _ in range(min(users, n))
    ]

    async def one(i: int) -> float:
        started = time.perf_counter()
        await clients[i % len(clients)].extract(_request(i))
        return time.perf_counter() - started

    await clients[0].extract(_request(n))  # unmeasured: the server loads the engine once
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    wall = time.perf_counter() - started
    for client in clients:
        await client.aclose()
    latencies = [o for o in outcomes if isinstance(o, float)]
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return latencies, errors, wall


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=300, help="bound of the whole run (s)")
    parser.add_argument("--users", type=int, default=20, help="clients the requests share")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server, url = _start_server(Path(tmp))
        try:
            latencies, errors, wall = asyncio.run(
                asyncio.wait_for(_run(url, args.requests, args.users), args.timeout)
            )
            jobs = httpx.get(url + "jobs", params={"limit": 10_000}, timeout=30).json()["jobs"]
        finally:
            server.terminate()
            server.wait(30)
    # the warm-up request's job is not one of the measured requests
    successful = sum(1 for j in jobs if j["processID"] == "extract" and j["status"] == "successful")
    successful -= 1
    row = {
        "requests": args.requests,
        "errors": len(errors),
        "jobs_successful": successful,
        "lost_jobs": args.requests - successful,
        "p50_s": float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "p95_s": float(np.percentile(latencies, 95)) if latencies else float("nan"),
        "max_s": max(latencies, default=float("nan")),
        "throughput_per_s": len(latencies) / wall,
        "wall_s": wall,
    }
    print("## service load: concurrent extract requests (loopback, sample provider)\n")
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print(
        "| "
        + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values())
        + " |"
    )
    for error in errors[:5]:
        print(f"error: {error}")
    return row


if __name__ == "__main__":
    result = main()
    sys.exit(1 if result["errors"] or result["lost_jobs"] else 0)
