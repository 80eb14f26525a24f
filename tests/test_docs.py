"""The documentation runs: every ```python block of docs/*.md and README.md is executed.

Blocks of one page run in order in one shared namespace, with a temporary folder as the
working directory. ``cas-xr ...`` lines of ```bash / ```console blocks run through the
CLI's ``main`` at their place in the page. A block preceded by ``<!-- no-test -->`` is
skipped. Top-level ``await`` is allowed (as in a notebook): such a block runs with
``asyncio.run``.

The pytest configuration turns warnings from cas_xr into errors, so documented examples
must give GOOD results or catch their warnings explicitly.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
NO_TEST = "<!-- no-test -->"
SHELL_LANGUAGES = {"bash", "console", "shell", "sh"}
FENCE = re.compile(r"^```\s*([\w+-]*)")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    language: str
    code: str
    line: int  # line number (1-based) of the first code line
    skipped: bool


def code_blocks(text: str) -> Iterator[Block]:
    """The top-level fenced code blocks of a Markdown text, in order."""
    lines = text.splitlines()
    i = 0
    previous = ""  # the last non-blank line before the current one
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        language = match.group(1).lower()
        start = i + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if end == len(lines):
            raise AssertionError(f"unclosed code fence at line {i + 1}")
        yield Block(language, "\n".join(lines[start:end]), start + 1, previous == NO_TEST)
        previous = ""
        i = end + 1


def run_python(block: Block, namespace: dict[str, Any], where: str) -> None:
    # pad with newlines so tracebacks show the line numbers of the Markdown file
    source = "\n" * (block.line - 1) + block.code
    code = compile(source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(code, namespace))  # top-level await, as in a notebook
    else:
        exec(code, namespace)


def run_cli_lines(block: Block, where: str) -> None:
    from cas_xr.cli import main

    for offset, line in enumerate(block.code.splitlines()):
        command = line.strip().removeprefix("$ ")
        if not command.startswith("cas-xr "):
            continue
        status = main(shlex.split(command)[1:])
        assert status == 0, f"{where}:{block.line + offset}: `{command}` exited with {status}"


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def is_runnable(block: Block) -> bool:
    if block.skipped:
        return False
    return block.language == "python" or (
        block.language in SHELL_LANGUAGES and "cas-xr " in block.code
    )


RUNNABLE_PAGES = [p for p in PAGES if any(map(is_runnable, code_blocks(p.read_text("utf-8"))))]


def test_pages_have_examples() -> None:
    names = {page_id(p) for p in RUNNABLE_PAGES}
    expected = {
        "README.md",
        "docs/index.md",
        "docs/quickstart.md",
        "docs/configuration.md",
        "docs/statistics.md",
        "docs/providers.md",
        "docs/sample-data.md",
    }
    assert expected <= names, f"pages without a runnable example: {sorted(expected - names)}"


def test_no_test_is_rare() -> None:
    skipped = [
        f"{page_id(p)}:{b.line}"
        for p in PAGES
        for b in code_blocks(p.read_text())
        if b.skipped and b.language == "python"
    ]
    assert len(skipped) <= 2, f"too many python blocks marked {NO_TEST}: {skipped}"


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=page_id)
def test_page_code_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runnable = [b for b in code_blocks(page.read_text(encoding="utf-8")) if is_runnable(b)]
    monkeypatch.chdir(tmp_path)
    environ = dict(os.environ)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    try:
        for block in runnable:
            where = f"{page_id(page)}"
            if block.language == "python":
                run_python(block, namespace, where)
            else:
                run_cli_lines(block, where)
    finally:
        os.environ.clear()
        os.environ.update(environ)


def test_configuration_page_lists_every_setting() -> None:
    from cas_xr.config import Settings

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [
        name for name in Settings.model_fields if f"| `{name}` | `CAS_{name.upper()}` |" not in text
    ]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_configuration_page_defaults_match_settings() -> None:
    from pydantic import SecretStr

    from cas_xr.config import Settings

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    wrong = []
    for name, field in Settings.model_fields.items():
        match = re.search(rf"^\| `{name}` \| `CAS_\w+` \| `([^`]*)` \|", text, re.MULTILINE)
        if match is None:
            continue  # reported by the test above
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        documented = ast.literal_eval(match.group(1))
        if documented != default:
            wrong.append(f"{name}: documented {documented!r}, actual {default!r}")
    assert not wrong, "wrong defaults in docs/configuration.md: " + "; ".join(wrong)


def test_readme_links_exist() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, "README.md links to no documentation page"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_readme_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in (
        "python -m pip install .",
        "cas-xr demo",
        'python -m pip install ".[dev,docs]" && python -m pytest',
    ):
        assert command in text, f"README.md lacks the command {command!r}"
    assert "synthetic" in text.lower()


def test_cli_page_documents_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from cas_xr.cli import main

    assert main(["--help"]) == 0
    usage = capsys.readouterr().out
    commands = set(re.findall(r"^    ([a-z][\w-]*)(?:\s|$)", usage, re.MULTILINE))
    assert {"demo", "extract", "providers", "datasets"} <= commands, usage
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = sorted(c for c in commands if f"`cas-xr {c}" not in text)
    assert not missing, f"docs/cli.md does not document: {missing}"
