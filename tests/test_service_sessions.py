"""Browser sessions: a cookie check never waits for the job store; logouts reach every process."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from pydantic import SecretStr

import cas_xr as cas
from cas_xr.service import create_app
from cas_xr.service._jobs import JobStore
from cas_xr.service._owners import BEAT_S
from cas_xr.service._sessions import Sessions
from tests.test_service_support import threaded_service

KEY = "sessions-test-key-0123456789"
HTML = {"Accept": "text/html"}


def _log_in(client: httpx.Client) -> str:
    """Log ``client`` in with the login form; the CSRF token of its session."""
    form = client.get("login")
    token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    answer = client.post("login", data={"api_key": KEY, "csrf_token": token, "next": "/run"})
    assert answer.status_code == 303, answer.text
    page = client.get("run")
    return page.text.split('name="csrf-token" content="')[1].split('"')[0]


def _settings(path: Path, **more: object) -> cas.Settings:
    return cas.Settings(jobs_db=str(path), auth_enabled=True, api_keys=[KEY], **more)


def test_ended_sessions_reach_other_processes_when_they_refresh(tmp_path: Path):
    path = str(tmp_path / "jobs.sqlite")  # one database, a store (connection) per process
    keys = [SecretStr(KEY)]
    here, there = Sessions(keys, revoked=JobStore(path)), Sessions(keys, revoked=JobStore(path))
    cookie = here.issue("key:abc")
    here.end(cookie)
    assert here.identity(cookie) is None  # at once where the session was ended
    assert there.identity(cookie) == "key:abc"  # another process has not read it yet
    there.refresh()
    assert there.identity(cookie) is None
    assert Sessions(keys, revoked=JobStore(path)).identity(cookie) is None  # one started later


def test_cookie_requests_are_answered_while_a_job_thread_holds_the_store(tmp_path: Path):
    settings = _settings(
        tmp_path / "jobs.sqlite", rate_limit_enabled=True, rate_limit_per_minute=1000
    )
    app = create_app(settings)
    store = app.state.cas.store
    with threaded_service(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        _log_in(client)
        cookies = {"cas_session": client.cookies["cas_session"]}
        with ThreadPoolExecutor(1) as pool:
            # as a job thread writing a large result does: the store's lock is taken
            with store._lock:
                waiting = pool.submit(httpx.get, url + "jobs", cookies=cookies, timeout=30)
                # the session is checked (by the authenticator, the rate limiter and the
                # page) without the store: requests that need no store are answered
                assert client.get("processes").json()["processes"]
                for page in ("processes", "run"):
                    answer = client.get(page, headers=HTML)
                    assert answer.status_code == 200 and "Log out" in answer.text, page
                # while the one that reads jobs waits for the store, in a worker thread
                assert not waiting.done()
            assert waiting.result().status_code == 200


def test_a_logout_is_refused_at_once_here_and_within_a_beat_by_other_processes(tmp_path: Path):
    settings = _settings(tmp_path / "jobs.sqlite")
    with (
        threaded_service(create_app(settings)) as here,
        threaded_service(create_app(settings)) as there,
        httpx.Client(base_url=here) as client,
    ):
        token = _log_in(client)
        cookies = {"cas_session": client.cookies["cas_session"]}
        assert httpx.get(there + "jobs", cookies=cookies).status_code == 200
        assert client.post("logout", data={"csrf_token": token}).status_code == 303
        ended = time.monotonic()
        assert httpx.get(here + "jobs", cookies=cookies).status_code == 401
        while httpx.get(there + "jobs", cookies=cookies).status_code != 401:
            assert time.monotonic() - ended < 3 * BEAT_S, "the other process still accepts it"
            time.sleep(0.05)
