"""Which representation a request asks for: ``?f=`` first, else the ``Accept`` header.

JSON stays the default: a request gets HTML only when it says ``f=html``, or when its
``Accept`` header names ``text/html`` at least as highly as ``application/json`` (as a
browser's navigation does). A ``*/*`` alone, or no ``Accept`` at all, means JSON.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

__all__ = ["asked_format", "without_format"]


def _quality(accept: str, media_type: str) -> float:
    """The ``q`` the ``Accept`` header gives ``media_type`` exactly (0 if not listed)."""
    best = 0.0
    for item in accept.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        if name.lower() != media_type:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = max(best, q)
    return best


def asked_format(query_string: str, accept: str) -> str:
    """``"html"``, ``"json"`` or the ``f`` value given (lower case).

    Parameters
    ----------
    query_string
        The raw query string.
    accept
        The ``Accept`` header ("" when absent).

    Examples
    --------
    >>> asked_format("f=html", "")
    'html'
    >>> asked_format("", "text/html,application/xhtml+xml,*/*;q=0.8")
    'html'
    >>> asked_format("", "*/*")
    'json'
    """
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key == "f":
            return value.strip().lower()
    html = _quality(accept, "text/html")
    return "html" if html > 0 and html >= _quality(accept, "application/json") else "json"


def without_format(query_string: str) -> str:
    """The query string without its ``f`` parameters."""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    return urlencode([(key, value) for key, value in pairs if key != "f"])
