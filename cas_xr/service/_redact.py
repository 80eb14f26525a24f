"""What the service sends names no folder of the server's disk.

The facade's results say where their data came from, local paths included (the
``endpoint`` of a local catalog, the ``path`` and ``files`` of local rasters), and error
messages name the file that could not be read: in-process that is what a user wants.
Over HTTP it would tell every caller how the server's disk is laid out, so the service
rewrites each absolute local path, and each ``file:`` URL, in the results, job messages
and problem details it sends as ``file://…/<name>``: the file's name stays (it is what
tells the datasets apart), its folders go. Remote URLs (``https://``, ``s3://``, GDAL's
``/vsicurl/...``) are kept as they are.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["redact", "redact_text"]

_PATH = re.compile(
    r"""
    (?<![\w.:/\\~-])                 # not inside a word, a URL or a relative path
    (?!/vsi)                         # GDAL's virtual file systems name remote data
    (?:file:(?://)?)?                # a file: URL, or a bare path
    (?:/|[A-Za-z]:[\\/])             # a POSIX root or a Windows drive
    (?:[^\s'"(),;:\\/]+[\\/])+       # one or more folders
    ([^\s'"(),;:\\/]*)               # the name
    """,
    re.VERBOSE,
)


_SEPARATORS = "/\\"
_SEPARATOR = re.compile(r"[\\/]")
_WHOLE = re.compile(r"(?!/vsi)(?:file:|/.*/|[A-Za-z]:[\\/])[^\n]*")  # a path and nothing else


def redact_text(text: str) -> str:
    """``text`` with every absolute local path written as ``file://…/<name>``.

    A text that is one path (a provenance ``endpoint``, say) keeps its last name whatever
    characters the path holds; in other text a path ends at white space or punctuation.

    Examples
    --------
    >>> redact_text("cannot read /srv/data/dem.tif (provider 'x')")
    "cannot read file://…/dem.tif (provider 'x')"
    >>> redact_text("https://example.com/stac/catalog.json")
    'https://example.com/stac/catalog.json'
    """
    if _WHOLE.fullmatch(text):
        path = text.removeprefix("file:").rstrip(_SEPARATORS)
        return f"file://…/{_SEPARATOR.split(path)[-1]}"
    return _PATH.sub(lambda match: f"file://…/{match.group(1)}", text)


def redact(value: Any) -> Any:
    """A JSON value with :func:`redact_text` applied to every string in it (keys too)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {redact_text(k): redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
