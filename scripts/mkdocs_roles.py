"""mkdocs hook: render the Sphinx roles of docstrings (``:class:`~a.B```) as cross-references.

The docstrings follow numpydoc, whose references are Sphinx roles; mkdocstrings shows
them literally. This hook turns each into an optional autorefs link: a link when the
name is documented, plain code otherwise (``~`` shows only the last component, as in
Sphinx).
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:func|class|data|meth|attr|mod|exc|obj):<code>(~?)([\w.]+)</code>")


def _autoref(match: re.Match[str]) -> str:
    short, identifier = match.groups()
    title = identifier.rsplit(".", 1)[-1] if short else identifier
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


def on_page_content(html: str, **kwargs: Any) -> str:
    """Replace the roles in a page's rendered HTML."""
    return _ROLE.sub(_autoref, html)
