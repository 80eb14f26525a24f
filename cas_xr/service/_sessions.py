"""Browser sessions: a signed cookie after a login with an API key, and CSRF tokens.

With ``auth_enabled``, the HTML pages' login form takes an API key and sets the session
cookie ``cas_session`` (HttpOnly, SameSite=Strict): ``<identity>.<expiry>.<signature>``,
where the identity is the key's digest (:meth:`ApiKeys.identity`, never the key) and the
signature an HMAC whose secret is derived from the configured API keys, so every worker
process accepts the same cookies and changing the keys ends every session. Logging out
ends the session for every copy of the cookie: its signature is stored as revoked (in the
job database, which the worker processes share) until the cookie would have expired.

Checking a cookie never reads the database, so it never blocks the event loop (nor waits
for the store's lock while a job thread writes): each :class:`Sessions` keeps the ended
sessions in memory. The process that ends a session refuses its cookie at once; the
others learn of it when they next :meth:`~Sessions.refresh`, which each service process
does every 2 s in its heartbeat thread (see :mod:`cas_xr.service._state`).

A request authenticated by the cookie that changes something (any method but GET, HEAD
and OPTIONS) must also carry the session's CSRF token (an HMAC of the cookie) in the
``X-CSRF-Token`` header or the ``csrf_token`` form field: the pages embed it. The login
form itself is protected by a double-submit token (the ``cas_login`` cookie and a form
field derived from it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Protocol

from pydantic import SecretStr

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LOGIN_COOKIE",
    "SAFE_METHODS",
    "Revocations",
    "Sessions",
]

COOKIE = "cas_session"
LOGIN_COOKIE = "cas_login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LIFETIME_S = 8 * 3600


class Revocations(Protocol):
    """Where ended sessions are kept (the job store)."""

    def revoke_session(self, signature: str, expiry: int) -> None:
        """Keep ``signature`` as revoked until ``expiry`` (Unix time)."""

    def revoked_sessions(self) -> dict[str, int]:
        """Signature -> expiry of the revoked signatures not yet expired."""


class Sessions:
    """Issue, check and end session cookies, and check CSRF tokens.

    Parameters
    ----------
    keys
        The accepted API keys (the signing secret is derived from them).
    revoked
        Where ended sessions are kept, read now and by :meth:`refresh` (None: an ended
        session is refused by this object only).
    lifetime_s
        How long a session lasts.
    """

    def __init__(
        self,
        keys: Iterable[SecretStr],
        *,
        revoked: Revocations | None = None,
        lifetime_s: int = _LIFETIME_S,
    ) -> None:
        material = b"\0".join(sorted(k.get_secret_value().encode() for k in keys))
        self._secret = hashlib.sha256(b"cas_xr session\0" + material).digest()
        self._revoked = revoked
        self.lifetime_s = lifetime_s
        self._lock = threading.Lock()
        #: signature -> expiry of the ended sessions (read without the lock: a dict
        #: lookup is atomic, and refresh replaces the dict as a whole)
        self._ended: dict[str, int] = {}
        self.refresh()

    def __repr__(self) -> str:
        return f"Sessions(lifetime_s={self.lifetime_s})"

    def _mac(self, purpose: str, text: str) -> str:
        message = f"{purpose}|{text}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def issue(self, identity: str) -> str:
        """A cookie value for a verified ``identity`` (``key:<digest>``)."""
        body = f"{identity}.{int(time.time()) + self.lifetime_s}"
        return f"{body}.{self._mac('session', body)}"

    def identity(self, cookie: str | None) -> str | None:
        """The identity of a valid, unexpired cookie whose session was not ended, else None.

        Never blocks: the ended sessions are those in memory (see :meth:`refresh`).
        """
        body, _, mac = (cookie or "").rpartition(".")
        identity, _, expiry = body.rpartition(".")
        if not identity or not hmac.compare_digest(mac, self._mac("session", body)):
            return None
        if not expiry.isdigit() or int(expiry) <= time.time():
            return None
        if mac in self._ended:
            return None
        return identity

    def end(self, cookie: str) -> None:
        """End the session of ``cookie`` for every copy of it (nothing if it is not valid).

        Refused here at once, then kept in the store (blocking: call it off the event loop).
        """
        if self.identity(cookie) is None:
            return
        body, _, mac = cookie.rpartition(".")
        expiry = int(body.rpartition(".")[2])
        with self._lock:
            self._ended[mac] = expiry
        if self._revoked is not None:
            self._revoked.revoke_session(mac, expiry)

    def refresh(self) -> None:
        """Read the sessions ended in the store, by other processes too.

        Blocking (it reads the job database): the service calls it every few seconds in a
        thread of its own, never on the event loop.
        """
        if self._revoked is None:
            return
        stored = self._revoked.revoked_sessions()
        now = time.time()
        with self._lock:
            kept = {mac: expiry for mac, expiry in self._ended.items() if expiry > now}
            self._ended = {**stored, **kept}

    def csrf_token(self, cookie: str) -> str:
        """The CSRF token of a session cookie."""
        return self._mac("csrf", cookie)

    def check_csrf(self, cookie: str, token: str | None) -> bool:
        """Whether ``token`` is the CSRF token of ``cookie``."""
        return token is not None and hmac.compare_digest(token, self.csrf_token(cookie))

    @staticmethod
    def login_nonce() -> str:
        """A fresh value for the ``cas_login`` cookie."""
        return secrets.token_urlsafe(24)

    def login_token(self, nonce: str) -> str:
        """The login form's token for the ``cas_login`` cookie ``nonce``."""
        return self._mac("login", nonce)

    def check_login(self, nonce: str | None, token: str | None) -> bool:
        """Whether the login form's ``token`` matches the ``cas_login`` cookie."""
        if not nonce or token is None:
            return False
        return hmac.compare_digest(token, self.login_token(nonce))
