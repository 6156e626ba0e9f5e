"""Development sessions: ``uv run nox`` runs lint, deps, typecheck, tests (the whole
suite on Python 3.11, the core and SQLite suites on 3.12 and 3.13), docs and build.

Sessions run inside the uv-managed project environment (``uv run nox`` syncs it from
``uv.lock``), so nox creates no virtualenvs of its own. The sessions of the other
Pythons sync an environment of their own per version, ``.nox/py3.12`` and so on, from
the same lock file, with interpreters already on the machine (uv downloads none).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = [
    "lint",
    "deps",
    "typecheck",
    "tests",
    "tests-3.12",
    "tests-3.13",
    "docs",
    "build",
]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).resolve().parent


def _projects() -> tuple[list[Path], list[Path]]:
    """The project directories of the published distributions (the umbrella ``esrc`` at
    the root and the workspace's members) and of the unpublished ones (the path sources
    of the development environment: the example application and the toy backend)."""
    uv = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    published = [ROOT, *(ROOT / member for member in uv["workspace"]["members"])]
    unpublished = [ROOT / s["path"] for s in uv["sources"].values() if "path" in s]
    return published, unpublished


PACKAGES = [
    "esrc",
    "esrc_core",
    "esrc_memory",
    "esrc_sqlalchemy",
    "esrc_testkit",
    "esrc_console",
    "esrc_faststream",
    "esrc_rabbitmq",
    "esrc_nats",
    "esrc_redis",
    "esrc_toy",
    "financing",
]

BACKENDS = ["memory", "sqlite", "postgresql", "mysql", "rabbitmq", "nats", "redis"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree, and the layering
    contracts of pyproject.toml's [tool.importlinter] (lint-imports)."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports", "--no-cache")


@nox.session
def deps(session: nox.Session) -> None:
    """deptry in every distribution: each module a distribution imports is one it
    declares (directly, not through another dependency), and each dependency it
    declares is imported, except those its ``[tool.deptry]`` table lists with the
    reason."""
    published, unpublished = _projects()
    for directory in [*published, *unpublished]:
        session.chdir(directory)
        session.run("deptry", "src")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package, the bench harness and the tests."""
    packages = [arg for name in PACKAGES for arg in ("-p", name)]
    session.run("mypy", "--strict", *packages)
    session.run("mypy", "--strict", "bench", "tests", "noxfile.py", "conftest.py")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite: every backend, the testkit, the docs' examples.

    Server-backed tests read ESRC_TEST_POSTGRESQL_URL and ESRC_TEST_MYSQL_URL; they skip
    when those are unset, except under CI=true, where they fail.
    """
    session.run("pytest", *session.posargs)


OTHER_PYTHONS = ["3.12", "3.13"]
"""The Pythons besides the project environment's 3.11 that the core and SQLite suites
run on."""

CORE_AND_SQLITE = [
    "tests/core",
    "tests/testkit",
    "tests/sqlalchemy",
    "-m",
    "not (postgresql or mysql or rabbitmq or nats or redis)",
]
"""The pytest arguments of the core and SQLite suites: the core, the testkit on the
in-memory and toy backends, the SQL store on SQLite."""


def _python(version: str) -> str | None:
    """An interpreter of ``version`` already on this machine: ``pythonX.Y`` on the
    PATH (pyenv's shims only answer for the selected versions, so they are skipped),
    then pyenv's installs, newest first; ``None`` when there is none."""
    name = f"python{version}"
    candidates = [
        Path(directory) / name
        for directory in os.environ.get("PATH", "").split(os.pathsep)
        if directory and Path(directory).name != "shims"
    ]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    installs = list(pyenv.glob(f"{version}.*/bin/{name}"))
    candidates += sorted(installs, key=_patch_level, reverse=True)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            answer = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
            )
            if answer.returncode == 0 and answer.stdout.strip() == version:
                return str(candidate)
    return None


def _patch_level(path: Path) -> tuple[int, ...]:
    """The numbers of a pyenv install's directory name (``3.12.1`` → (3, 12, 1))."""
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.parent.name))


def _tests_on(session: nox.Session, version: str) -> None:
    """Sync ``.nox/py<version>`` from uv.lock with an interpreter of ``version`` on the
    machine, then run the core and SQLite suites in it (``session.posargs`` replace
    them). A missing interpreter fails the session under ``CI=true``, and skips it
    elsewhere."""
    interpreter = _python(version)
    if interpreter is None:
        message = (
            f"no Python {version} on this machine (looked for python{version} on the PATH "
            f"and in pyenv's versions); install it, e.g. `pyenv install {version}`"
        )
        if os.environ.get("CI") == "true":
            session.error(message)
        session.skip(message)
    environment = ROOT / ".nox" / f"py{version}"
    session.run(
        "uv",
        "sync",
        "--frozen",
        "--quiet",
        "--python",
        interpreter,
        env={
            "UV_PROJECT_ENVIRONMENT": str(environment),
            "UV_PYTHON_DOWNLOADS": "never",
            "VIRTUAL_ENV": None,
        },
    )
    python = environment / "bin" / "python"
    session.run(str(python), "-m", "pytest", *(session.posargs or CORE_AND_SQLITE))


for _version in OTHER_PYTHONS:

    def _session(session: nox.Session, version: str = _version) -> None:
        _tests_on(session, version)

    _session.__doc__ = f"The core and SQLite suites on Python {_version}, in .nox/py{_version}."
    nox.session(name=f"tests-{_version}")(_session)


@nox.session
@nox.parametrize("backend", BACKENDS)
def backend(session: nox.Session, backend: str) -> None:
    """The tests of one backend only, e.g. ``nox -s "backend(backend='postgresql')"``."""
    session.run("pytest", "-m", backend, *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site, failing on warnings and broken references."""
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session
def build(session: nox.Session) -> None:
    """Build every published distribution as users get it, and try them out.

    ``uv build --all-packages`` (an sdist each, and the wheel built from it) into a
    temporary directory; ``twine check --strict`` on every file; the LICENSE in every
    wheel and sdist; then a fresh virtual environment that takes the esrc distributions
    only from the built wheels (their dependencies from the index): plain ``esrc``
    installs neither pytest nor hypothesis, ``import esrc`` gives the version, and the
    README's example and ``esrc demo`` run; with every extra, every module of every
    distribution imports.
    """
    version = _version_of(ROOT)
    published = _published()
    with tempfile.TemporaryDirectory(prefix="esrc-build-") as scratch:
        work = Path(scratch)
        dist = work / "dist"
        session.run(
            "uv",
            "build",
            "--all-packages",
            "--quiet",
            "--out-dir",
            str(dist),
            env={"UV_PYTHON_DOWNLOADS": "never"},
        )
        wheels = {_normalize(w.name.split("-")[0]): w for w in dist.glob("*.whl")}
        sdists = {_normalize(s.name.rsplit("-", 1)[0]): s for s in dist.glob("*.tar.gz")}
        if set(wheels) != published or set(sdists) != published:
            session.error(
                f"built wheels {sorted(wheels)} and sdists {sorted(sdists)}, "
                f"want one of each for {sorted(published)}"
            )
        session.run("twine", "check", "--strict", *map(str, [*wheels.values(), *sdists.values()]))
        session.log("LICENSE in every file: %s", _check_licenses(dist, version))

        venv = work / "venv"
        session.run(sys.executable, "-m", "venv", "--without-pip", str(venv))
        python = str(venv / "bin" / "python")
        # The esrc distributions the umbrella pulls in come from these files, never
        # from the index (constraints keep the extras they are asked with).
        constraints = work / "constraints.txt"
        constraints.write_text(
            "".join(
                f"{name} @ {wheel.as_uri()}\n"
                for name, wheel in sorted(wheels.items())
                if name != "esrc"
            )
        )

        def install(extras: str) -> None:
            requirement = f"esrc{extras} @ {wheels['esrc'].as_uri()}"
            session.run(
                "uv",
                "pip",
                "install",
                "--quiet",
                "--python",
                python,
                "--constraint",
                str(constraints),
                requirement,
                env={"UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": None},
            )

        # Out of the checkout, whose directories would import as namespace packages.
        session.chdir(work)
        install("")
        session.run(python, "-c", _PLAIN_INSTALL, version)
        example = work / "readme_example.py"
        example.write_text(_readme_example())
        session.run(python, str(example))
        session.run(str(venv / "bin" / "esrc"), "demo")

        install("[" + ",".join(_extras(ROOT)) + "]")
        session.run(python, "-c", _IMPORT_ALL, *sorted(wheels))


_PLAIN_INSTALL = """\
import importlib.util, sys
import esrc
print("esrc", esrc.__version__)
assert esrc.__version__ == sys.argv[1], (esrc.__version__, sys.argv[1])
unwanted = [m for m in ("pytest", "hypothesis", "esrc_testkit") if importlib.util.find_spec(m)]
assert not unwanted, f"plain esrc installed {unwanted}"
"""

_IMPORT_ALL = """\
import importlib, pkgutil, sys
for name in sys.argv[1:]:
    package = importlib.import_module(name.replace("-", "_"))
    modules = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    for module in modules:
        importlib.import_module(module)
    print(f"imported {package.__name__} and its {len(modules)} modules")
"""


def _normalize(name: str) -> str:
    """A distribution name as the index compares it (``esrc_core`` → ``esrc-core``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _version_of(directory: Path) -> str:
    """The version in ``directory``'s pyproject.toml."""
    project = tomllib.loads((directory / "pyproject.toml").read_text())["project"]
    return str(project["version"])


def _extras(directory: Path) -> list[str]:
    """The extras of ``directory``'s pyproject.toml."""
    project = tomllib.loads((directory / "pyproject.toml").read_text())["project"]
    return sorted(project.get("optional-dependencies", {}))


def _published() -> set[str]:
    """The names of the published distributions."""
    return {
        _normalize(tomllib.loads((d / "pyproject.toml").read_text())["project"]["name"])
        for d in _projects()[0]
    }


def _check_licenses(dist: Path, version: str) -> int:
    """Check that every wheel and sdist in ``dist`` carries the repository's LICENSE
    (a wheel in ``.dist-info/licenses/``, an sdist at its top); return how many."""
    import tarfile
    import zipfile

    want = (ROOT / "LICENSE").read_bytes()
    checked = 0
    for wheel in sorted(dist.glob("*.whl")):
        name = wheel.name.split("-")[0]
        with zipfile.ZipFile(wheel) as archive:
            found = archive.read(f"{name}-{version}.dist-info/licenses/LICENSE")
        if found != want:
            raise RuntimeError(f"{wheel.name}: its LICENSE is not the repository's")
        checked += 1
    for sdist in sorted(dist.glob("*.tar.gz")):
        top = sdist.name.removesuffix(".tar.gz")
        with tarfile.open(sdist) as archive:
            member = archive.extractfile(f"{top}/LICENSE")
            found = member.read() if member is not None else b""
        if found != want:
            raise RuntimeError(f"{sdist.name}: its LICENSE is not the repository's")
        checked += 1
    return checked


def _readme_example() -> str:
    """The Python code blocks of the README, in order: the example users read first."""
    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    if not blocks:
        raise RuntimeError("README.md has no ```python block to run")
    return "\n".join(blocks)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark harness; arguments after ``--`` go to it (not part of ``nox``)."""
    session.run("python", "-m", "bench", *session.posargs)


@nox.session(name="bench-async")
def bench_async(session: nox.Session) -> None:
    """The async API's figures against the raw asyncio drivers (``bench.async_figures``);
    arguments after ``--`` go to it (not part of ``nox``)."""
    session.run("python", "-m", "bench.async_figures", *session.posargs)


@nox.session(name="bench-telemetry")
def bench_telemetry(session: nox.Session) -> None:
    """What the OpenTelemetry instrumentation costs a Repository on memory://, with the
    API absent, off, installed, imported without a provider, and recording
    (``bench.telemetry``); arguments after ``--`` go to it (not part of ``nox``)."""
    session.run("python", "-m", "bench.telemetry", *session.posargs)


@nox.session(name="bench-marshaling")
def bench_marshaling(session: nox.Session) -> None:
    """JsonMarshaler's encode and decode through msgspec against its hand-written path
    (``bench.marshaling``); arguments after ``--`` go to it (not part of ``nox``)."""
    session.run("python", "-m", "bench.marshaling", *session.posargs)


@nox.session(name="bench-nats")
def bench_nats(session: nox.Session) -> None:
    """The JetStream event store through ``Repository`` against nats-py alone, on one
    nats-server (R1) and on a three-node cluster (R3) it starts on loopback, beside the
    SQL store on PostgreSQL against psycopg (``$ESRC_TEST_POSTGRESQL_URL``, or
    ``--postgresql URL``) in the same run: 1-event appends on 1 and 8 threads, 10-event
    appends, a 1,000-event load and an outbox read, with esrc's ratio to the raw figure
    and the targets (``bench.nats_store``); arguments after ``--`` go to it (not part
    of ``nox``)."""
    session.run("python", "-m", "bench.nats_store", *session.posargs)


@nox.session(name="bench-console")
def bench_console(session: nox.Session) -> None:
    """The web console's pages timed over HTTP on a million events in SQLite and
    PostgreSQL, against the 200 ms target (``bench.console``); arguments after ``--``
    go to it (not part of ``nox``)."""
    session.run("python", "-m", "bench.console", *session.posargs)


@nox.session
def screenshots(session: nox.Session) -> None:
    """Regenerate the web console's screenshots in docs/images/ from the financing
    demo's store, in headless Chromium (``tests/console/screenshots.py``; not part of
    ``nox``)."""
    session.run("python", "-m", "tests.console.screenshots", *session.posargs)
