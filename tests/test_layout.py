"""The code's layout rules that no linter checks: modules do not read other modules'
underscore attributes. (Import layering is checked by ``lint-imports``; see
docs/internals.md.)"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TREES = [
    "esrc_core/src",
    "esrc_memory/src",
    "esrc_sqlalchemy/src",
    "esrc_testkit/src",
    "publishers",
    "examples",
    "bench",
    "tests",
]

PUBLIC_UNDERSCORE = frozenset(
    {"_replace", "_asdict", "_fields", "_make", "_field_defaults", "_exit", "_getframe"}
)
"""Names the standard library makes public despite the underscore (namedtuple's API,
``os._exit``, ``sys._getframe``)."""


def _modules() -> Iterator[Path]:
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            if ".venv" not in path.parts and "site" not in path.parts:
                yield path


def _own_private_names(module: ast.Module) -> set[str]:
    """The underscore names a module defines itself: functions, classes, class and
    instance attributes, module globals, parameters and locals."""
    names: set[str] = set()
    for node in ast.walk(module):
        match node:
            case ast.FunctionDef(name=name) | ast.AsyncFunctionDef(name=name) | ast.ClassDef(
                name=name
            ):
                names.add(name)
            case ast.Name(id=name, ctx=ast.Store()):
                names.add(name)
            case ast.Attribute(attr=name, ctx=ast.Store()):
                names.add(name)
            case ast.arg(arg=name):
                names.add(name)
            case ast.AnnAssign(target=ast.Name(id=name)):
                names.add(name)
    return {n for n in names if n.startswith("_")}


def _is_self(node: ast.expr) -> bool:
    match node:
        case ast.Name(id="self" | "cls"):
            return True
        case ast.Call(func=ast.Name(id="super")):
            return True
    return False


def _foreign_private_reads(path: Path) -> Iterator[str]:
    module = ast.parse(path.read_text(encoding="utf-8"), str(path))
    own = _own_private_names(module)
    for node in ast.walk(module):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__") or name in PUBLIC_UNDERSCORE:
            continue
        if _is_self(node.value) or name in own:
            continue
        yield f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}"


def test_no_module_reads_another_modules_underscore_attributes() -> None:
    """``obj._name`` is allowed only for ``self``/``cls``/``super()`` or a name the same
    module defines (e.g. another instance of its own class); everything else is a
    collaborator reaching into private state, which should get what it needs passed
    in or use a documented testing hook."""
    found = [line for path in _modules() for line in _foreign_private_reads(path)]
    if found:
        pytest.fail("underscore attributes read across modules:\n" + "\n".join(found))
