"""Load test of the service: concurrent `extract` requests on the sample provider, loopback only.

Usage: python benchmarks/service_load.py [--requests 200] [--users 20] [--timeout 300]
       [--job-processes 1] [--client-processes 1] [--loop uvloop|asyncio] [--no-baseline]

Starts `cas-xr serve` on a free port of 127.0.0.1 with a temporary job database (and
``CAS_JOB_PROCESSES``: the worker processes that compute the jobs; revisions without
that setting ignore it), sends one unmeasured request (the server loads the engine on its
first job), then ``--requests`` extract requests at once, shared by ``--users`` users
(each request a different geometry near lon -96.5 lat 39.0, so no answer comes from the
result cache). Each request is one job's flow: the execute request,
long-polled status requests until the job has finished, the results.

The load generator measures the server, not itself, as a load test does: before the
timed burst each user opens and warms the connections it will use (one unmeasured request
on each), the request bodies are encoded, and the results are validated after the burst;
a request's clock starts when it is written to its connection (with aiohttp, at its
``on_request_chunk_sent``), not when its coroutine starts; the users' event loop is
uvloop's when installed (``--loop``); ``--client-processes 2`` spreads the users over two
processes (started together after their warm-up). Printed: percentiles of the time to a
result (request sent to results received) and of the submit (request sent to its 201
received), ``client_queue_p95_ms`` (from a request's coroutine starting to its write: the
generator's own queue, outside the metric), the throughput: requests / (first request
sent to last result), connections opened during the burst (0 when every user's pool was
warm), the server's CPU time (its process and worker processes) per job, the load
generator's own (its processes) and the load average: the machine may be shared. It then
checks that nothing was lost: every request has a successful job in ``/jobs``.

The generator's floor is measured in the same run (``--no-baseline`` skips it): the same
flow against ``noop_service.py``, a bare ASGI app on uvicorn that answers at once (201,
``successful``, the warm-up job's results), printed as the row ``noop server``. The
anchor, ``extract_sync_per_s``, is the same requests computed one by one with
``extract_sync`` in this process, after one unmeasured call. Bounded: each burst stops
after ``--timeout`` seconds, and the servers are stopped.

``--client``: the users' HTTP client. ``httptools`` (default): one keep-alive connection
a request (``_http1.py``), read where the bytes move, as wrk does: the 201 received when
the event loop hands its bytes to the connection, before any coroutine runs (the
generator's own work after that, such as sending the next requests, is not in the
request's time). ``aiohttp`` (the default before): a connection pool per user, a
request's 201 received when its coroutine reads it. ``cas_xr``: cas_xr's AsyncClient
(httpx), timed from the call (httpx does not say when a request is written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from _http1 import Connection, request

from cas_xr.client._calls import LONG_POLL_S
from cas_xr.models import AttributeResponse

HERE = Path(__file__).resolve().parent
_JSON = {"Content-Type": "application/json"}
_NAN = float("nan")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(
    command: list[str], env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server listening on ``--port`` (appended), and wait until it answers."""
    port = _free_port()
    with log.open("ab") as out:
        server = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            httpx.get(url + "conformance", timeout=2)
            return server, url
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")


def _start_server(folder: Path, job_processes: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAS_")}
    env["CAS_JOBS_DB"] = str(folder / "jobs.sqlite")
    env["CAS_JOB_PROCESSES"] = str(job_processes)
    command = [sys.executable, "-m", "cas_xr", "serve", "--log-level", "warning"]
    return _start(command, env, folder / "serve.log")


def _start_noop(folder: Path, results: bytes) -> tuple[subprocess.Popen[bytes], str]:
    (folder / "results.json").write_bytes(results)
    env = {**os.environ, "NOOP_RESULT": str(folder / "results.json")}
    command = [sys.executable, "-m", "uvicorn", "noop_service:app", "--app-dir", str(HERE),
               "--host", "127.0.0.1", "--log-level", "warning"]  # fmt: skip
    return _start(command, env, folder / "noop.log")


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)


def _request(i: int) -> dict[str, Any]:
    lon, lat = -96.69 + 0.0037 * (i % 100), 38.82 + 0.0041 * (i // 100)
    if i % 2:
        return {"geometry": {"type": "Point", "coordinates": [lon, lat]},
                "dataset_ids": ["sample:elevation", "sample:clay_0-5cm"]}  # fmt: skip
    ring = [[lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01], [lon, lat + 0.01], [lon, lat]]
    return {"geometry": {"type": "Polygon", "coordinates": [ring]},
            "dataset_ids": ["sample:elevation", "sample:land_cover"]}  # fmt: skip


def _warm_up_job(url: str, i: int) -> bytes:
    """One job's flow, unmeasured (the server loads the engine); its results document."""
    with httpx.Client(timeout=300) as http:
        created = http.post(f"{url}processes/extract/execution", json={"inputs": _request(i)})
        created.raise_for_status()
        status: dict[str, Any] = {"status": "accepted"}
        while status["status"] in ("accepted", "running"):
            wait = {"Prefer": f"wait={LONG_POLL_S}"}
            status = http.get(created.headers["Location"], headers=wait).json()
        results = http.get(created.headers["Location"] + "/results")
        results.raise_for_status()
        return results.content


@dataclass
class _Timing:
    """One request's clock readings (``time.perf_counter``: comparable across processes)."""

    call: float  # its coroutine started
    sent: float = _NAN  # the execute request was written to its connection
    created: float = _NAN  # its 201 was received
    result: float = _NAN  # its results were received
    body: bytes = field(default=b"", repr=False)  # the results, validated after the burst


@dataclass
class _Part:
    """What one load-generator process measured."""

    timings: list[tuple[float, float, float, float]]
    errors: list[str]
    cpu_s: float
    opened: int  # connections opened during the burst


async def _flow_aiohttp(session: Any, url: str, body: bytes, timing: _Timing) -> None:
    """One job's flow (execute, long-polled status, results) with aiohttp."""
    async with session.post(
        f"{url}processes/extract/execution", data=body, headers=_JSON, trace_request_ctx=timing
    ) as r:
        timing.created = time.perf_counter()
        if r.status != 201:
            raise RuntimeError(f"execute answered {r.status}: {await r.text()}")
        job = r.headers["Location"]
    status: dict[str, Any] = {"status": "accepted"}
    while status["status"] in ("accepted", "running"):  # long polls, as cas_xr's client
        async with session.get(job, headers={"Prefer": f"wait={LONG_POLL_S}"}) as r:
            status = await r.json()
    if status["status"] != "successful":
        raise RuntimeError(f"job {job} {status['status']}: {status.get('message')}")
    async with session.get(f"{job}/results") as r:
        if r.status != 200:
            raise RuntimeError(f"results answered {r.status}: {await r.text()}")
        timing.body = await r.read()
    timing.result = time.perf_counter()


async def _flow_http1(conn: Any, host: str, body: bytes, timing: _Timing) -> None:
    """The same flow on one connection of :mod:`_http1` (timed where the bytes move)."""
    execute = request("POST", "/processes/extract/execution", host, body, **_JSON)
    answer = await conn.send(execute)
    timing.sent, timing.created = answer.sent, answer.received
    if answer.status != 201:
        raise RuntimeError(f"execute answered {answer.status}: {answer.body[:2000]!r}")
    job = urlsplit(answer.headers[b"location"].decode()).path
    poll = request("GET", job, host, Prefer=f"wait={LONG_POLL_S}")
    status: dict[str, Any] = {"status": "accepted"}
    while status["status"] in ("accepted", "running"):  # long polls, as cas_xr's client
        status = json.loads((await conn.send(poll)).body)
    if status["status"] != "successful":
        raise RuntimeError(f"job {job} {status['status']}: {status.get('message')}")
    answer = await conn.send(request("GET", f"{job}/results", host))
    if answer.status != 200:
        raise RuntimeError(f"results answered {answer.status}: {answer.body[:2000]!r}")
    timing.body, timing.result = answer.body, answer.received


async def _flow_cas_xr(client: Any, inputs: dict[str, Any], timing: _Timing) -> None:
    """The same flow through cas_xr's AsyncClient (timed from the call)."""
    from cas_xr.ogc import JobStatus

    timing.sent = timing.call
    job = await client.execute_process("extract", {"inputs": inputs})
    timing.created = time.perf_counter()
    status = await client.wait_for_job(job.jobID)
    if status.status is not JobStatus.SUCCESSFUL:
        raise RuntimeError(f"job {job.jobID} {status.status.value}: {status.message}")
    timing.body = json.dumps(await client.get_job_results(job.jobID)).encode()
    timing.result = time.perf_counter()


async def _users(
    url: str, mine: dict[int, list[int]], client: str, go: Callable[[], None]
) -> _Part:
    """The burst of the requests of users ``mine`` (user -> the requests it sends).

    Each user warms its connections first (as many as it sends requests at once); ``go``
    is called once every connection is warm, just before the burst.
    """
    import aiohttp

    from cas_xr.client import AsyncClient

    opened = 0

    async def on_sent(session: Any, context: Any, params: Any) -> None:
        timing = context.trace_request_ctx
        if isinstance(timing, _Timing) and timing.sent != timing.sent:  # the first chunk
            timing.sent = time.perf_counter()

    async def on_opened(session: Any, context: Any, params: Any) -> None:
        nonlocal opened
        opened += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(on_sent)
    trace.on_connection_create_end.append(on_opened)
    host, port = url.split("/")[2].rsplit(":", 1)
    sessions, clients, connections = {}, {}, {}
    for u in mine:  # one connection pool per user, as separate users have
        if client == "httptools":  # connections opened below, one a request
            continue
        if client == "cas_xr":
            clients[u] = AsyncClient(api_url=url, transport=httpx.AsyncHTTPTransport(), timeout=120)
        else:
            connector = aiohttp.TCPConnector(limit=0)
            sessions[u] = aiohttp.ClientSession(connector=connector, trace_configs=[trace])
    bodies = {i: json.dumps({"inputs": _request(i)}).encode() for r in mine.values() for i in r}

    async def warm(u: int) -> None:  # a user's unmeasured first requests: one a connection
        if client == "httptools":
            for i in mine[u]:
                connections[i] = await Connection.open(host, int(port))
            conformance = request("GET", "/conformance", f"{host}:{port}")
            await asyncio.gather(*(connections[i].send(conformance) for i in mine[u]))
            return
        if client == "cas_xr":
            await asyncio.gather(*(clients[u].get_conformance() for _ in mine[u]))
            return
        calls = [sessions[u].get(url + "conformance") for _ in mine[u]]
        for response in await asyncio.gather(*calls):
            await response.read()

    async def one(u: int, i: int) -> _Timing:
        timing = _Timing(time.perf_counter())
        if client == "cas_xr":
            await _flow_cas_xr(clients[u], _request(i), timing)
        elif client == "httptools":
            await _flow_http1(connections[i], f"{host}:{port}", bodies[i], timing)
        else:
            await _flow_aiohttp(sessions[u], url, bodies[i], timing)
        return timing

    try:
        await asyncio.gather(*(warm(u) for u in mine))
        go()
        opened, cpu = 0, time.process_time()
        outcomes = await asyncio.gather(
            *(one(u, i) for u, requests in mine.items() for i in requests),
            return_exceptions=True,
        )
        cpu = time.process_time() - cpu
    finally:
        for session in sessions.values():
            await session.close()
        for each in clients.values():
            await each.aclose()
        for connection in connections.values():
            connection.close()
    timings = [o for o in outcomes if isinstance(o, _Timing)]
    errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    for timing in timings:  # checked after the burst: the check's CPU is not in it
        try:
            AttributeResponse.model_validate(json.loads(timing.body)["response"])
        except Exception as err:
            errors.append(f"results not valid: {err!r}"[:500])
    readings = [(t.call, t.sent, t.created, t.result) for t in timings]
    return _Part(readings, errors, cpu, opened)


def _run_users(
    url: str, mine: dict[int, list[int]], args: argparse.Namespace, go: Callable[[], None]
) -> _Part:
    """:func:`_users` on the event loop ``args.loop`` asks for, bounded by ``args.timeout``."""
    factory = None
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(_users(url, mine, args.client, go), args.timeout))


def _child(url: str, mine: dict[int, list[int]], args: Any, barrier: Any, out: Any) -> None:
    try:
        out.send(_run_users(url, mine, args, barrier.wait))
    except BaseException as err:
        barrier.abort()
        out.send(_Part([], [f"load generator process: {err!r}"], 0.0, 0))


def _burst(url: str, n: int, args: argparse.Namespace, pid: int) -> tuple[_Part, float]:
    """The measured burst from ``args.client_processes`` processes: what they measured, and
    the server's CPU seconds from the burst's start to its end.

    Request i is sent by user i % users; the users are dealt to the processes in turn.
    """
    users = min(args.users, n)
    shares = {u: list(range(u, n, users)) for u in range(users)}
    processes = min(args.client_processes, users)
    if processes == 1:
        cpu = [0.0]

        def go() -> None:
            cpu[0] = _cpu_s(pid)

        part = _run_users(url, shares, args, go)
        return part, _cpu_s(pid) - cpu[0]
    context = multiprocessing.get_context("fork")  # before this process runs an event loop
    barrier = context.Barrier(processes + 1)
    pipes, children = [], []
    for p in range(processes):
        receiving, sending = context.Pipe(duplex=False)
        mine = {u: shares[u] for u in range(p, users, processes)}
        child = context.Process(target=_child, args=(url, mine, args, barrier, sending))
        child.start()
        pipes.append(receiving)
        children.append(child)
    try:
        barrier.wait(timeout=args.timeout)
        cpu = _cpu_s(pid)
    except Exception:  # a process failed to warm up: its error is in its part
        cpu = _NAN
    parts = []
    for receiving, child in zip(pipes, children, strict=True):
        parts.append(receiving.recv() if receiving.poll(args.timeout) else None)
        child.join(30)
        if child.is_alive():
            child.kill()
    cpu = _cpu_s(pid) - cpu
    done = [p for p in parts if p is not None]
    errors = [e for p in done for e in p.errors]
    errors += ["a load generator process did not answer"] * (len(parts) - len(done))
    merged = _Part(
        [t for p in done for t in p.timings], errors,
        sum(p.cpu_s for p in done), sum(p.opened for p in done),
    )  # fmt: skip
    return merged, cpu


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


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else _NAN


def _row(
    tool: str, args: argparse.Namespace, part: _Part, server_cpu_s: float, successful: int
) -> dict[str, Any]:
    n = args.requests
    calls, sent, created, result = np.array(part.timings, dtype=float).reshape(-1, 4).T
    latencies, submits = list(result - sent), list(created - sent)
    wall = float(result.max() - sent.min()) if part.timings else _NAN
    return {
        "tool": tool,
        "client": args.client,
        "client_processes": min(args.client_processes, args.users, n),
        "loop": args.loop,
        "job_processes": args.job_processes if tool == "cas_xr" else 0,
        "requests": n,
        "errors": len(part.errors),
        "jobs_successful": successful,
        "lost_jobs": n - successful,
        "p50_s": _percentile(latencies, 50),
        "p95_s": _percentile(latencies, 95),
        "max_s": max(latencies, default=_NAN),
        "submit_p50_ms": 1000 * _percentile(submits, 50),
        "submit_p95_ms": 1000 * _percentile(submits, 95),
        "client_queue_p95_ms": 1000 * _percentile(list(sent - calls), 95),
        "throughput_per_s": len(latencies) / wall,
        "wall_s": wall,
        "connections_opened": part.opened,
        "server_cpu_ms_per_job": 1000 * server_cpu_s / n,
        "client_cpu_ms_per_job": 1000 * part.cpu_s / n,
        "load_1min": os.getloadavg()[0],
        "extract_sync_per_s": _NAN,
    }


def _successful(url: str) -> int:
    jobs = httpx.get(url + "jobs", params={"limit": 10_000}, timeout=30).json()["jobs"]
    return sum(1 for j in jobs if j["processID"] == "extract" and j["status"] == "successful")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=300, help="bound of each burst (s)")
    parser.add_argument("--users", type=int, default=20, help="clients the requests share")
    parser.add_argument(
        "--client", choices=["aiohttp", "httptools", "cas_xr"], default="httptools",
        help="the users' HTTP client: aiohttp, one _http1 connection a request (httptools), "
        "or cas_xr's AsyncClient (httpx)",
    )  # fmt: skip
    parser.add_argument(
        "--client-processes", type=int, default=1,
        help="load-generator processes the users are spread over",
    )  # fmt: skip
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default=loop)
    parser.add_argument(
        "--job-processes", type=int, default=1,
        help="CAS_JOB_PROCESSES of the server (0: jobs compute in the server's process)",
    )  # fmt: skip
    parser.add_argument(
        "--no-anchor", dest="anchor", action="store_false",
        help="skip the anchor: the same requests through extract_sync, one by one",
    )  # fmt: skip
    parser.add_argument(
        "--no-baseline", dest="baseline", action="store_false",
        help="skip the row of the same load against a server that does no work",
    )  # fmt: skip
    parser.add_argument(
        "--server", nargs=2, metavar=("URL", "PID"),
        help="load this running server (e.g. one under a profiler) instead of starting one",
    )  # fmt: skip
    args = parser.parse_args(argv)
    n = args.requests
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.server:
            url, pid = args.server[0], int(args.server[1])
            before = _successful(url)
        else:
            server, url = _start_server(Path(tmp), args.job_processes)
            pid, before = server.pid, 0
        try:
            results = _warm_up_job(url, n)
            part, cpu_s = _burst(url, n, args, pid)
            errors = list(part.errors)
            # the warm-up request's job is not one of the measured requests
            rows.append(_row("cas_xr", args, part, cpu_s, _successful(url) - before - 1))
        finally:
            if not args.server:
                _stop(server)
        if args.baseline:
            noop, url = _start_noop(Path(tmp), results)
            try:
                part, cpu_s = _burst(url, n, args, noop.pid)
                errors += part.errors
                rows.append(_row("noop server", args, part, cpu_s, _successful(url)))
            finally:
                _stop(noop)
    if args.anchor:
        rows[0]["extract_sync_per_s"] = n / _anchor(n)
    print("## service load: concurrent extract requests (loopback, sample provider)\n")
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        cells = (f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values())
        print("| " + " | ".join(cells) + " |")
    for error in errors[:5]:
        print(f"error: {error}")
    return rows


if __name__ == "__main__":
    measured = main()
    sys.exit(1 if any(r["errors"] or r["lost_jobs"] for r in measured) else 0)
