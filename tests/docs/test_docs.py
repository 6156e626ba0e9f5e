"""Run the documentation: every ```python block of docs/**/*.md and README.md.

One test per page. A page's blocks run in order, in one shared namespace (a fresh
module per page), with a fresh temporary directory as the working directory and on
``sys.path``. A block may use ``assert`` to show a result; a failing block fails its
page, and the traceback points at the Markdown file and line.

The fence's info string says what the harness does with a block:

``python``
    Executed.

``python title="path/name.py"``
    A file the reader would create: written to that path in the working directory
    (so later blocks can import it), not executed. When the file name matches
    ``test_*.py``, the harness runs ``pytest`` on it in a subprocess, in the working
    directory, after the page's other blocks (so a ``conftest.py`` shown after it is in
    place), and requires it to pass with at least one passing test.

``python { .no-run }``
    Shown, never executed: for code that needs something the test run cannot
    have (a remote server, say). Every such block must be listed in
    :data:`NOT_RUN`, keyed by page and first line, and every entry of :data:`NOT_RUN`
    must still exist; so skipping is a visible decision, never a way to let examples rot.

Any other option after ``python``, or a Python block fenced as ``py``, ``python3`` or
``pycon``, fails the page instead of being silently ignored.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

ROOT = Path(__file__).resolve().parents[2]

NOT_RUN: dict[str, set[str]] = {
    "docs/getting-started.md": {
        'store = open_event_store("postgresql+psycopg://app:secret@db.internal:5432/app")',
    },
    "docs/nats.md": {"from esrc_core import Repository, open_event_store"},
}
"""Blocks marked ``{ .no-run }``, by page (relative to the repository root) and the
block's first non-blank line. Keep it short."""

_PYTHONISH = {"py", "py3", "python3", "pycon", "pyi", "ipython"}
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")
_TITLE = re.compile(r'^title="(?P<title>[^"]+)"$')
_NO_RUN = re.compile(r"^\{\s*\.no-run\s*\}$")

Kind = Literal["run", "file", "no-run"]


@dataclass(frozen=True)
class Block:
    """One fenced Python block of a page."""

    page: str
    line: int
    """1-based line of the first line of code in the Markdown file."""
    kind: Kind
    code: str
    title: str | None = None

    @property
    def first_line(self) -> str:
        """The first non-blank line of code, stripped: the block's key in NOT_RUN."""
        return next((line.strip() for line in self.code.splitlines() if line.strip()), "")


class DocsFormatError(Exception):
    """A page has a fence the harness does not understand."""


def _classify(page: str, line: int, info: str) -> tuple[Kind, str | None] | None:
    """What to do with a fence whose info string is ``info``; None for non-Python."""
    language, _, options = info.partition(" ")
    if "{" in language:
        language, brace, rest = language.partition("{")
        options = brace + rest + (" " + options if options else "")
    options = options.strip()
    if language in _PYTHONISH:
        raise DocsFormatError(
            f"{page}:{line}: fence a Python example as ```python, not ```{language}"
        )
    if language != "python":
        return None
    if not options:
        return "run", None
    title = _TITLE.match(options)
    if title:
        return "file", title["title"]
    if _NO_RUN.match(options):
        return "no-run", None
    raise DocsFormatError(
        f"{page}:{line}: unknown option {options!r} on a ```python fence; use none, "
        'title="file.py" or { .no-run }'
    )


def parse_blocks(page: str, text: str) -> list[Block]:
    """The fenced Python blocks of Markdown ``text``, in order."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _OPEN.match(lines[index])
        index += 1
        if not opening:
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        start = index
        while index < len(lines) and not closing.match(lines[index]):
            index += 1
        if index == len(lines):
            raise DocsFormatError(f"{page}:{start}: fence opened here is never closed")
        body = [_dedent(line, indent) for line in lines[start:index]]
        index += 1
        what = _classify(page, start, opening["info"])
        if what is not None:
            kind, title = what
            blocks.append(Block(page, start + 1, kind, "\n".join(body) + "\n", title))
    return blocks


def _dedent(line: str, indent: int) -> str:
    stripped = len(line) - len(line.lstrip(" \t"))
    return line[min(indent, stripped) :]


def _pages() -> list[str]:
    pages = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").rglob("*.md"))
    return [*pages, "README.md"]


def _run_pytest_file(block: Block, workdir: Path) -> None:
    assert block.title is not None
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", block.title]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    where = f"{block.page}:{block.line}: `{shlex.join(command[2:])}` on {block.title}"
    assert result.returncode == 0, f"{where} failed (exit {result.returncode}):\n{output}"
    assert re.search(r"\b[1-9]\d* passed\b", output), f"{where} passed no test:\n{output}"


def run_page(page: str, text: str, workdir: Path, filename: str | None = None) -> None:
    """Run the blocks of ``page`` in one namespace with ``workdir`` as the working
    directory (the caller sets that up); tracebacks name ``filename`` (default: page)."""
    module = types.ModuleType(f"docs_page_{re.sub(r'[^0-9A-Za-z]', '_', page)}")
    module.__file__ = str(workdir / "__docs_page__.py")
    sys.modules[module.__name__] = module
    test_files: list[Block] = []
    try:
        for block in parse_blocks(page, text):
            if block.kind == "no-run":
                continue
            if block.kind == "file":
                assert block.title is not None
                target = (workdir / block.title).resolve()
                assert target.is_relative_to(workdir.resolve()), f"{block.title} leaves workdir"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.code)
                if re.fullmatch(r"test_.*\.py", target.name):
                    test_files.append(block)
                continue
            # Pad with newlines so tracebacks show the Markdown file's own line numbers.
            code = compile("\n" * (block.line - 1) + block.code, filename or page, "exec")
            try:
                exec(code, module.__dict__)
            except BaseException as err:
                err.add_note(f"in the ```python block at {page}:{block.line}")
                raise
        for block in test_files:
            _run_pytest_file(block, workdir)
    finally:
        del sys.modules[module.__name__]
        _forget_modules_under(workdir)


def check_not_run(page: str, blocks: list[Block], allowed: dict[str, set[str]]) -> None:
    """Fail unless the page's ``{ .no-run }`` blocks are exactly those ``allowed`` lists
    for it, by first line."""
    not_run = {b.first_line for b in blocks if b.kind == "no-run"}
    listed = allowed.get(page, set())
    assert not_run == listed, (
        f"{page}: blocks marked {{ .no-run }} must match NOT_RUN in {Path(__file__).name}; "
        f"not allowed: {sorted(not_run - listed)}, allowed but gone: {sorted(listed - not_run)}"
    )


def _forget_modules_under(directory: Path) -> None:
    """Unload modules imported from files a page wrote, so pages stay independent."""
    root = directory.resolve()
    for name, loaded in list(sys.modules.items()):
        path = getattr(loaded, "__file__", None)
        if path and Path(path).resolve().is_relative_to(root):
            del sys.modules[name]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, also first on sys.path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("page", _pages())
def test_page(page: str, workdir: Path) -> None:
    """Every ```python block of the page runs without error, and its not-run blocks
    are exactly the ones NOT_RUN allows."""
    text = (ROOT / page).read_text(encoding="utf-8")
    check_not_run(page, parse_blocks(page, text), NOT_RUN)
    run_page(page, text, workdir, filename=str(ROOT / page))


def test_not_run_names_existing_pages() -> None:
    """Every page NOT_RUN mentions exists, so an entry cannot outlive its page."""
    missing = sorted(set(NOT_RUN) - set(_pages()))
    assert not missing, f"NOT_RUN lists pages that do not exist: {missing}"


SAMPLE = """\
# Sample

```python
x = 1
```

- a list item:

    ```python
    x += 1
    ```

```python title="pkg/mod.py"
VALUE = 41
```

~~~python { .no-run }
connect("db.example.com")
~~~

````markdown
```python
not_a_block = True
```
````

```toml
[x]
```
"""


def test_parse_blocks_finds_kinds_lines_and_indented_code() -> None:
    """The parser returns each Python block with its kind, title and first code line,
    dedents indented blocks, and ignores other languages and nested fences."""
    blocks = parse_blocks("sample.md", SAMPLE)
    got = [(b.kind, b.line, b.title, b.code) for b in blocks]
    want = [
        ("run", 4, None, "x = 1\n"),
        ("run", 10, None, "x += 1\n"),
        ("file", 14, "pkg/mod.py", "VALUE = 41\n"),
        ("no-run", 18, None, 'connect("db.example.com")\n'),
    ]
    assert got == want


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ("py", "not ```py"),
        ("pycon", "not ```pycon"),
        ("python skip", "unknown option 'skip'"),
        ('python title="x.py" linenums="1"', "unknown option"),
    ],
)
def test_parse_blocks_rejects_unknown_python_fences(info: str, message: str) -> None:
    """A Python fence the harness would not run as written is an error, not a skip."""
    with pytest.raises(DocsFormatError, match=re.escape(message)):
        parse_blocks("sample.md", f"```{info}\npass\n```\n")


def test_check_not_run_refuses_unlisted_and_stale_entries() -> None:
    """A not-run block missing from the allow-list fails, and so does an allow-list
    entry whose block is gone; an exact match passes."""
    blocks = parse_blocks("sample.md", SAMPLE)
    check_not_run("sample.md", blocks, {"sample.md": {'connect("db.example.com")'}})
    with pytest.raises(AssertionError, match="not allowed: \\['connect"):
        check_not_run("sample.md", blocks, {})
    with pytest.raises(AssertionError, match="allowed but gone: \\['gone\\(\\)'\\]"):
        check_not_run("sample.md", blocks, {"sample.md": {'connect("db.example.com")', "gone()"}})


def test_parse_blocks_rejects_an_unclosed_fence() -> None:
    """An unclosed fence is an error rather than a silently swallowed page."""
    with pytest.raises(DocsFormatError, match="never closed"):
        parse_blocks("sample.md", "```python\npass\n")


def test_run_page_shares_a_namespace_writes_files_and_points_at_the_failing_line(
    workdir: Path,
) -> None:
    """Blocks share names, a titled file is importable by later blocks, and a failing
    block raises with the page's own line number."""
    page = """\
```python title="helper_mod.py"
ANSWER = 42
```

```python
from helper_mod import ANSWER
value = ANSWER
```

```python
assert value == 42
assert value == 43
```
"""
    with pytest.raises(AssertionError) as caught:
        run_page("sample.md", page, workdir)
    frame = caught.traceback[-1]
    assert (str(frame.path), frame.lineno + 1) == ("sample.md", 12)
    assert "sample.md:11" in "".join(getattr(caught.value, "__notes__", []))
    assert "helper_mod" not in sys.modules
