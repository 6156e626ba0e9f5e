"""Development sessions: ``uv run nox`` runs lint, typecheck, tests and docs.

Sessions run inside the uv-managed project environment (``uv run nox`` syncs it from
``uv.lock``), so nox creates no virtualenvs of its own.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]
nox.options.error_on_missing_interpreters = True

PACKAGES = [
    "esrc_core",
    "esrc_memory",
    "esrc_sqlalchemy",
    "esrc_testkit",
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
