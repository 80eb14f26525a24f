"""Helpers (no tests): run `cas-xr serve` as a subprocess on 127.0.0.1, or the app in a thread;
run Debian's redis-server.

Under CI=true a server that cannot start fails the test; elsewhere it skips.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

START_TIMEOUT_S = 60.0

POINT = {"type": "Point", "coordinates": [-96.5, 39.0]}


def square(lon: float, lat: float, size: float = 0.02) -> dict[str, Any]:
    """A closed square polygon with its south-west corner at (lon, lat)."""
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cannot_start(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but a server cannot start: {message}")
    pytest.skip(f"a server cannot start: {message}")


def wait_until_up(url: str, alive: Any = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError("the server process exited")
        try:
            if httpx.get(url + "conformance", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer from {url} within {START_TIMEOUT_S} s")


class LiveService:
    """``python -m cas_xr serve --testing`` on a free port with its own jobs database."""

    def __init__(
        self,
        folder: Path,
        env: Mapping[str, str] | None = None,
        log_level: str = "warning",
        args: Sequence[str] = (),
    ) -> None:
        self.folder = folder
        self.log_level = log_level
        self.args = list(args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = folder / "serve.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CAS_")}
        self.env["CAS_JOBS_DB"] = str(folder / "jobs.sqlite")
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveService:
        command = [sys.executable, "-m", "cas_xr", "serve", "--testing"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", self.log_level]
        command += self.args
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        try:
            wait_until_up(self.url, alive=lambda: self.process and self.process.poll() is None)
        except RuntimeError as err:
            self.kill()
            cannot_start(f"{err}\n{self.log.read_text(errors='replace')[-3000:]}")
        return self

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM: a graceful shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def live_service(
    folder: Path,
    env: Mapping[str, str] | None = None,
    log_level: str = "warning",
    args: Sequence[str] = (),
) -> Iterator[LiveService]:
    service = LiveService(folder, env, log_level, args).start()
    try:
        yield service
    finally:
        service.stop()


@contextmanager
def threaded_service(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread of this process; yields its URL.

    As ``cas-xr serve``, uvicorn does not read ``X-Forwarded-For`` itself.
    """
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, alive=thread.is_alive)
    except RuntimeError as err:
        server.should_exit = True
        cannot_start(str(err))
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(15)


@contextmanager
def redis_server(folder: Path, password: str | None = None) -> Iterator[str]:
    """Debian's ``redis-server`` on a free port of 127.0.0.1; yields its ``redis://`` URL.

    Under CI=true a server that cannot start fails the test; elsewhere it skips.
    """
    import shutil

    executable = shutil.which("redis-server")
    if executable is None:
        cannot_start("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    command = [str(executable), "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    command += ["--requirepass", password] if password else []
    log = folder / "redis.log"
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            cannot_start(f"redis-server did not start:\n{log.read_text(errors='replace')[-2000:]}")
        auth = f":{password}@" if password else ""
        yield f"redis://{auth}127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(15)


def poll(client: httpx.Client, job_id: str, until: set[str], timeout: float = 30) -> dict[str, Any]:
    """GET the job until its status is in ``until``; return the status info."""
    deadline = time.monotonic() + timeout
    while True:
        info: dict[str, Any] = client.get(f"jobs/{job_id}").json()
        if info["status"] in until or time.monotonic() > deadline:
            return info
        time.sleep(0.02)
