"""The files of a new backend distribution (``esrc new-backend``).

:func:`render` gives each file's text by its path in the distribution; the store
skeleton is generated from :class:`~esrc_core.store.EventStore` itself (its methods'
signatures and docstrings, read with :mod:`inspect`), so the contract a new backend
starts from is always the one the installed esrc-core checks.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from esrc_core.store import EventStore

__all__ = ["BackendNames", "names_for", "render", "store_skeleton"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
_SCHEME = re.compile(r"^[a-z][a-z0-9.-]*$")
_ROLE = re.compile(r":[a-z]+:`(~?)([\w.]+)`")

# Where the names that the protocol's annotations use are imported from, in the
# generated module. A name missing here is a new annotation: render() refuses it.
_IMPORTS = {
    "AggregateId": "esrc_core",
    "RawEvent": "esrc_core",
    "RawSnapshot": "esrc_core",
    "Sequence": "collections.abc",
    "Iterator": "collections.abc",
}
_BUILTINS = {"str", "int", "bool", "None", "float", "bytes", "list", "tuple", "dict"}

ESRC_CORE_REQUIREMENT = "esrc-core>=0.1.0,<0.2"
"""The esrc-core versions a new backend is written against."""
ESRC_TESTKIT_REQUIREMENT = "esrc-testkit>=0.1.0,<0.2"
"""The esrc-testkit versions its tests run with."""


@dataclass(frozen=True)
class BackendNames:
    """The names of one new backend: ``name`` (``redis-streams``), its distribution
    (``esrc-redis-streams``), package (``esrc_redis_streams``), URL scheme and store
    class (``RedisStreamsEventStore``)."""

    name: str
    distribution: str
    package: str
    scheme: str
    store_class: str


def names_for(name: str, scheme: str | None = None) -> BackendNames:
    """The names of the backend ``name``; ``scheme`` defaults to ``name`` with ``_``
    as ``-``. Raises ``ValueError`` saying what is wrong with either."""
    if not _NAME.match(name):
        raise ValueError(
            f"backend name {name!r}: use lower-case letters and digits, starting with a "
            "letter, words joined by single '-' or '_' (such as redis or redis-streams)"
        )
    if name.startswith("esrc"):
        raise ValueError(
            f"backend name {name!r}: leave out the esrc prefix; the distribution is "
            "called esrc-NAME already"
        )
    chosen = name.replace("_", "-") if scheme is None else scheme
    if not _SCHEME.match(chosen):
        raise ValueError(
            f"URL scheme {chosen!r}: use lower-case letters, digits, '.' and '-', starting "
            "with a letter ('+' is how a URL forces a backend, so a scheme cannot hold one)"
        )
    words = re.split(r"[-_]", name)
    return BackendNames(
        name=name,
        distribution=f"esrc-{name.replace('_', '-')}",
        package=f"esrc_{name.replace('-', '_')}",
        scheme=chosen,
        store_class="".join(w.capitalize() for w in words) + "EventStore",
    )


def _plain(doc: str) -> str:
    """A docstring with its Sphinx roles as plain names (``~a.b.C`` as ``C``)."""
    return _ROLE.sub(lambda m: f"``{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}``", doc)


def _docstring(doc: str, indent: str) -> str:
    body = textwrap.indent(_plain(doc), indent).rstrip().lstrip()
    if "\n" not in body:
        return f'{indent}"""{body}"""\n'
    return f'{indent}"""{body}\n{indent}"""\n'


def _annotation(text: str, used: set[str]) -> str:
    for word in re.findall(r"[A-Za-z_]\w*", text):
        if word not in _BUILTINS:
            if word not in _IMPORTS:
                raise ValueError(
                    f"EventStore uses {word!r} in an annotation; esrc new-backend does "
                    "not know where to import it from"
                )
            used.add(word)
    return text


def _signature(method: Callable[..., Any], used: set[str]) -> str:
    """``def NAME(...) -> R:`` on one line, or one parameter a line when that is
    longer than 88 characters (as ``ruff format`` writes it)."""
    parameters = []
    star = False
    for parameter in inspect.signature(method).parameters.values():
        if parameter.kind is parameter.KEYWORD_ONLY and not star:
            parameters.append("*")
            star = True
        text = parameter.name
        if parameter.annotation is not parameter.empty:
            text += f": {_annotation(str(parameter.annotation), used)}"
        if parameter.default is not parameter.empty:
            text += f" = {parameter.default!r}"
        parameters.append(text)
    returns = _annotation(str(inspect.signature(method).return_annotation), used)
    line = f"    def {method.__name__}({', '.join(parameters)}) -> {returns}:"
    if len(line) <= 88:
        return line + "\n"
    listed = "".join(f"        {p},\n" for p in parameters)
    return f"    def {method.__name__}(\n{listed}    ) -> {returns}:\n"


def _protocol_methods() -> list[str]:
    """EventStore's own methods, in the order the protocol declares them."""
    return [
        name
        for name, value in vars(EventStore).items()
        if inspect.isfunction(value) and not name.startswith("_")
    ]


def store_skeleton(names: BackendNames) -> str:
    """The store module: a class naming :class:`~esrc_core.store.EventStore` as its base,
    each method raising ``NotImplementedError`` under the protocol's docstring."""
    used: set[str] = set()
    methods = []
    for method_name in _protocol_methods():
        method = getattr(EventStore, method_name)
        methods.append(
            _signature(method, used)
            + _docstring(inspect.getdoc(method) or "", " " * 8)
            + f'        raise NotImplementedError("{names.store_class}.{method_name}")\n'
        )
    imports = ["from __future__ import annotations", ""]
    abc = sorted(n for n in used if _IMPORTS[n] == "collections.abc")
    if abc:
        imports += [f"from collections.abc import {', '.join(abc)}", ""]
    core = sorted({"EventStore", "mask_url", *(n for n in used if _IMPORTS[n] == "esrc_core")})
    imports.append(f"from esrc_core import {', '.join(core)}")
    contract = _docstring(inspect.getdoc(EventStore) or "", " " * 4)
    return (
        f'"""The {names.name} event store.\n\n'
        "Every method below raises NotImplementedError; its docstring is the contract\n"
        "esrc_testkit checks (copied from esrc_core's EventStore protocol). Replace each\n"
        "body with the real one; docs/plugins.md in the esrc repository is the guide.\n"
        '"""\n\n'
        + "\n".join(imports)
        + f'\n\n__all__ = ["{names.store_class}"]\n\n\n'
        + f"class {names.store_class}(EventStore):\n"
        + contract
        + "\n"
        + "    def __init__(self, url: str) -> None:\n"
        + '        """Open the store at ``url`` (connect, or check that it can). ``url`` is\n'
        + "        kept with its password masked: it is for messages, never for connecting\n"
        + '        again."""\n'
        + "        self.url = mask_url(url)\n\n"
        + "\n".join(methods)
    )


def _plugin(names: BackendNames) -> str:
    return f'''"""Entry point of the {names.name} backend: describes the backend to esrc.

It imports nothing but esrc_core, so ``esrc plugins`` lists the backend even where its
driver is missing; the store module is imported when a store is opened.
"""

from __future__ import annotations

from typing import Any

from esrc_core import (
    Backend,
    BackendConfigError,
    BackendUnavailableError,
    Capability,
    hookimpl,
    mask_url,
)

__all__ = ["CAPABILITIES", "esrc_store_backends", "open_store"]

INSTALL_HINT = "pip install {names.distribution}"

CAPABILITIES: frozenset[Capability] = frozenset()
"""What the store offers beyond the EventStore protocol, as Capability members
(SNAPSHOTS, OUTBOX, WAIT, READ_AHEAD, THREADS, PERSISTENT, RELAY_LOCK, INSPECT, MIGRATE,
STREAMING). esrc_testkit runs the tests of each one declared here and skips the rest:
declare exactly what the store keeps. The guide lists what each one obliges."""


def open_store(url: str, **options: Any) -> Any:
    """Open the store at ``url`` ({names.scheme}://...). ``options`` are the keyword
    arguments of ``open_event_store``; one the store does not take is a
    BackendConfigError, raised before anything connects."""
    if options:
        raise BackendConfigError(
            f"open {{mask_url(url)}}: the {names.name} backend takes no options, "
            f"got {{sorted(options)}}"
        )
    try:
        from {names.package}.store import {names.store_class}
    except ImportError as err:
        raise BackendUnavailableError(
            f"the {names.name} backend cannot load its store: {{INSTALL_HINT}}"
        ) from err
    return {names.store_class}(url)


@hookimpl
def esrc_store_backends() -> list[Backend]:
    """The {names.name} event store."""
    return [
        Backend(
            name="{names.name}",
            kind="store",
            schemes=("{names.scheme}",),
            factory=open_store,
            capabilities=CAPABILITIES,
            description="events in {names.name} ({names.scheme}://...)",
            install_hint=INSTALL_HINT,
        )
    ]
'''


def _tests(names: BackendNames) -> str:
    return f'''"""The esrc acceptance suite, run against the {names.name} backend."""

import pytest
from esrc_core import open_event_store
from esrc_testkit import EventStoreAcceptance, capabilities_of


class Test{names.store_class}(EventStoreAcceptance):
    capabilities = capabilities_of("{names.scheme}://")

    @pytest.fixture
    def store_factory(self):
        stores = []  # each call must open a new, empty store
        yield lambda: stores.append(open_event_store("{names.scheme}://")) or stores[-1]
        for store in stores:
            store.close()
'''


def _pyproject(names: BackendNames) -> str:
    return f"""[project]
name = "{names.distribution}"
version = "0.1.0"
description = "An esrc event store backend: {names.name} ({names.scheme}://)"
readme = "README.md"
requires-python = ">=3.11"
# Choose a licence, add its text as LICENSE, then declare it here:
# license = "MIT"
# license-files = ["LICENSE"]
dependencies = ["{ESRC_CORE_REQUIREMENT}"]

[project.entry-points.esrc]
{names.name} = "{names.package}.plugin"

[dependency-groups]
dev = ["{ESRC_TESTKIT_REQUIREMENT}", "pytest>=8"]

[build-system]
requires = ["hatchling>=1.27"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/{names.package}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""


def _readme(names: BackendNames) -> str:
    return f"""# {names.distribution}

An [esrc](https://github.com/esrc-dev/esrc) event store backend for `{names.scheme}://` URLs.

```console
$ pip install {names.distribution}
$ esrc plugins            # lists the {names.name} backend and its capabilities
```

## Developing

`src/{names.package}/store.py` is a skeleton: every method raises `NotImplementedError`
under the contract it must keep. Fill them in, declare what the store offers in
`CAPABILITIES` (`src/{names.package}/plugin.py`), and run the testkit:

```console
$ uv sync                 # or: pip install -e . esrc-testkit pytest
$ uv run pytest
```

Until esrc-core and esrc-testkit are on your package index, install them from an esrc
checkout (`pip install -e ../esrc/esrc_core -e ../esrc/esrc_testkit`), or tell uv where
they are in `pyproject.toml`:

```toml
[tool.uv.sources]
esrc-core = {{ git = "https://github.com/esrc-dev/esrc", subdirectory = "esrc_core" }}
esrc-testkit = {{ git = "https://github.com/esrc-dev/esrc", subdirectory = "esrc_testkit" }}
```

The backend author guide (`docs/plugins.md` in the esrc repository) lists every
capability, its protocol and the tests that prove it.

## Licence

Choose one, add its text as `LICENSE` and declare it in `pyproject.toml`.
"""


def render(names: BackendNames) -> dict[str, str]:
    """Each file of the new distribution, by its path relative to the distribution's
    directory (``pyproject.toml``, ``src/PACKAGE/store.py``, ``tests/test_store.py``...)."""
    package = f"src/{names.package}"
    return {
        "pyproject.toml": _pyproject(names),
        "README.md": _readme(names),
        f"{package}/__init__.py": f'"""An esrc event store backend: {names.name}."""\n',
        f"{package}/py.typed": "",
        f"{package}/plugin.py": _plugin(names),
        f"{package}/store.py": store_skeleton(names),
        "tests/test_store.py": _tests(names),
    }
