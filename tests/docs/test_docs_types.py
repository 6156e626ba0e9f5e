"""The README's example type-checks: its ```python blocks, joined in order as
``test_docs`` runs them, pass ``mypy --strict`` without a cast or an ignore, so what a
reader copies into a type-checked project works as it is.

Pages listed in :data:`TYPED_PAGES` are held to it; titled file blocks and
``{ .no-run }`` blocks are left out, as the runner leaves them out of the page's
namespace.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.test_docs import ROOT, parse_blocks

TYPED_PAGES = ["README.md"]
"""Pages whose executed blocks must pass ``mypy --strict``."""

_SILENCED = re.compile(r"#\s*type:\s*ignore|\bcast\(")


def page_module(page: str) -> str:
    """The executed blocks of ``page`` as one module, each preceded by blank lines so
    that mypy reports the Markdown file's own line numbers."""
    code: list[str] = []
    for block in parse_blocks(page, (ROOT / page).read_text(encoding="utf-8")):
        if block.kind != "run":
            continue
        lines_so_far = sum(part.count("\n") for part in code)
        code.append("\n" * (block.line - 1 - lines_so_far) + block.code)
    return "".join(code)


@pytest.mark.parametrize("page", TYPED_PAGES)
def test_page_passes_mypy_strict(page: str, tmp_path: Path) -> None:
    """mypy --strict finds nothing in the page's executed blocks, which use no cast
    and no ``type: ignore`` to get there."""
    module = page_module(page)
    assert module.strip(), f"{page} has no executed ```python block"
    silenced = [line for line in module.splitlines() if _SILENCED.search(line)]
    assert not silenced, f"{page} silences the type checker: {silenced}"
    target = tmp_path / f"{Path(page).stem.lower()}_example.py"
    target.write_text(module, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--no-error-summary",
        "--cache-dir",
        str(tmp_path / ".mypy_cache"),
        str(target),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    report = (result.stdout + result.stderr).replace(str(target), page)
    assert result.returncode == 0, f"mypy --strict on the examples of {page}:\n{report}"


def test_page_module_keeps_the_pages_line_numbers() -> None:
    """A line of the joined module is the same line of the Markdown page, so mypy's
    report points at the page."""
    module = page_module("README.md").splitlines()
    page = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    code_lines = [number for number, line in enumerate(module) if line.strip()]
    assert code_lines, "README.md has no executed code"
    mismatched = [n + 1 for n in code_lines if module[n] != page[n]]
    assert not mismatched, f"lines {mismatched[:5]} of the module differ from README.md's"
