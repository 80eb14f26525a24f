"""Load test of the service: concurrent `extract` requests on the sample provider, loopback only.

Usage: python benchmarks/service_load.py [--requests 200] [--users 20] [--timeout 300]
       [--job-processes 1]

Starts `cas-xr serve` on a free port of 127.0.0.1 with a temporary job database (and
``CAS_JOB_PROCESSES``: the worker processes that compute the jobs; revisions without
that setting ignore it), sends one unmeasured request (the server loads the engine on its
first job), then ``--requests`` extract requests at once through cas_xr's AsyncClient, shared by
``--users`` clients (each a different geometry near lon -96.5 lat 39.0, so no answer
comes from the result cache), waits for every job, and prints percentiles of the time to
a result (request sent to results received) and of the submit (the execute request's
answer), and the throughput: requests / (first request to last result). It then checks
that nothing was lost: every request has a successful job in ``/jobs``. The server's CPU
time (its process and worker processes) per job, the load generator's own (this process:
the users' HTTP clients share the machine's cores with the server) and the load average
are printed too: the machine may be shared. The anchor,
``extract_sync_per_s``, is the same requests computed one by one with ``extract_sync``
in this process, after one unmeasured call. Bounded: the whole run stops after
``--timeout`` seconds, and the server is stopped.
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
from cas_xr.client._calls import LONG_POLL_S
from cas_xr.models import AttributeResponse
from cas_xr.ogc import JobStatus


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(folder: Path, job_processes: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAS_")}
    env["CAS_JOBS_DB"] = str(folder / "jobs.sqlite")
    env["CAS_JOB_PROCESSES"] = str(job_processes)
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


async def _extract(client: AsyncClient, inputs: dict[str, Any]) -> float:
    """What ``client.extract`` does, step by step; returns the submit's seconds."""
    started = time.perf_counter()
    job = await client.execute_process("extract", {"inputs": inputs})
    submitted = time.perf_counter() - started
    status = await client.wait_for_job(job.jobID)
    if status.status is not JobStatus.SUCCESSFUL:
        raise RuntimeError(f"job {job.jobID} {status.status.value}: {status.message}")
    AttributeResponse.model_validate((await client.get_job_results(job.jobID))["response"])
    return submitted


async def _extract_raw(session: Any, url: str, inputs: dict[str, Any]) -> float:
    """The same HTTP exchange as :func:`_extract`, with aiohttp; returns the submit's seconds."""
    started = time.perf_counter()
    async with session.post(f"{url}processes/extract/execution", json={"inputs": inputs}) as r:
        if r.status != 201:
            raise RuntimeError(f"execute answered {r.status}: {await r.text()}")
        job = r.headers["Location"]
    submitted = time.perf_counter() - started
    status: dict[str, Any] = {"status": "accepted"}
    while status["status"] in ("accepted", "running"):  # long polls, as the client's
        async with session.get(job, headers={"Prefer": f"wait={LONG_POLL_S}"}) as r:
            status = await r.json()
    if status["status"] != "successful":
        raise RuntimeError(f"job {job} {status['status']}: {status.get('message')}")
    async with session.get(f"{job}/results") as r:
        AttributeResponse.model_validate((await r.json())["response"])
    return submitted


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and its live descendants so far."""
    import psutil

    server = psutil.Process(pid)
    total = 0.0
    for each in [server, *server.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def _run(
    url: str, n: int, users: int, client: str, pid: int
) -> tuple[list[tuple[float, float]], list[str], float, tuple[float, float]]:
    import aiohttp

    # one client (a connection pool) per user, as separate users have
    sessions = [aiohttp.ClientSession() for _ in range(min(users, n))]
    clients = [
        AsyncClient(api_url=url, transport=httpx.AsyncHTTPTransport(), timeout=120)
        for _ in range(min(users, n))
    ]

    async def extract(i: int) -> float:
        if client == "cas_xr":
            return await _extract(clients[i % len(clients)], _request(i))
        return await _extract_raw(sessions[i % len(sessions)], url, _request(i))

    async def one(i: int) -> tuple[float, float]:
        started = time.perf_counter()
        submit = await extract(i)
        return time.perf_counter() - started, submit

    try:
        await extract(n)  # unmeasured: the server loads the engine once
        cpu, own = _cpu_s(pid), time.process_time()
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
        wall = time.perf_counter() - started
        cpu, own = _cpu_s(pid) - cpu, time.process_time() - own
    finally:
        for session in sessions:
            await session.close()
        for each in clients:
            await each.aclose()
    times = [o for o in outcomes if isinstance(o, tuple)]
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return times, errors, wall, (cpu, own)


def _anchor(n: int) -> float:
    """Seconds to compute the same requests one by one with ``extract_sync``, in process."""
    import warnings

    import cas_xr as cas

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quality warnings of the sample data
        cas.extract_sync(_request(n + 1))  # unmeasured: load the engine
        started = time.perf_counter()
        for i in range(n):
            cas.extract_sync(_request(i))
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=300, help="bound of the whole run (s)")
    parser.add_argument("--users", type=int, default=20, help="clients the requests share")
    parser.add_argument(
        "--client", choices=["aiohttp", "cas_xr"], default="aiohttp",
        help="the users' HTTP client: aiohttp (light), or cas_xr's AsyncClient (httpx)",
    )  # fmt: skip
    parser.add_argument(
        "--job-processes", type=int, default=1,
        help="CAS_JOB_PROCESSES of the server (0: jobs compute in the server's process)",
    )  # fmt: skip
    parser.add_argument(
        "--no-anchor", dest="anchor", action="store_false",
        help="skip the anchor: the same requests through extract_sync, one by one",
    )  # fmt: skip
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server, url = _start_server(Path(tmp), args.job_processes)
        try:
            times, errors, wall, (cpu_s, client_cpu_s) = asyncio.run(
                asyncio.wait_for(
                    _run(url, args.requests, args.users, args.client, server.pid), args.timeout
                )
            )
            jobs = httpx.get(url + "jobs", params={"limit": 10_000}, timeout=30).json()["jobs"]
        finally:
            server.terminate()
            server.wait(30)
    # the warm-up request's job is not one of the measured requests
    successful = sum(1 for j in jobs if j["processID"] == "extract" and j["status"] == "successful")
    successful -= 1
    anchor_s = _anchor(args.requests) if args.anchor else float("nan")
    latencies, submits = [t for t, _ in times], [s for _, s in times]

    def percentile(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")

    row = {
        "client": args.client,
        "job_processes": args.job_processes,
        "requests": args.requests,
        "errors": len(errors),
        "jobs_successful": successful,
        "lost_jobs": args.requests - successful,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "max_s": max(latencies, default=float("nan")),
        "submit_p50_ms": 1000 * percentile(submits, 50),
        "submit_p95_ms": 1000 * percentile(submits, 95),
        "throughput_per_s": len(latencies) / wall,
        "wall_s": wall,
        "server_cpu_ms_per_job": 1000 * cpu_s / args.requests,
        "client_cpu_ms_per_job": 1000 * client_cpu_s / args.requests,
        "load_1min": os.getloadavg()[0],
        "extract_sync_per_s": args.requests / anchor_s,
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
