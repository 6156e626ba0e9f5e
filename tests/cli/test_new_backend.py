"""``esrc new-backend``: the distribution it writes is installable as it stands, its
tests run the testkit and fail on the skeleton's stubs, and once the skeleton is filled
in (tests/cli/ledger_store.py, written by following docs/plugins.md) the whole
acceptance suite passes.

The generated project is "installed" the way an editable install does it, without a
virtual environment: its ``src`` directory goes on ``PYTHONPATH`` beside a
``.dist-info`` directory holding the METADATA and the entry points its own
``pyproject.toml`` declares, so esrc finds the plugin through the ``esrc`` entry point
group exactly as it would find an installed one.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from esrc_core.cli import main
from esrc_core.cli._main import EXIT_USAGE
from esrc_core.store import EventStore

LEDGER_STORE = Path(__file__).with_name("ledger_store.py")


@dataclass(frozen=True)
class Outcome:
    """A pytest run of a generated project: its exit status and, from its JUnit
    report, each test's result (``passed``, ``failed``, ``error``, ``skipped``) and
    message."""

    status: int
    results: dict[str, tuple[str, str]]
    output: str

    def named(self, result: str) -> list[str]:
        """The tests with ``result``."""
        return [name for name, (got, _) in self.results.items() if got == result]


def generate(directory: Path, name: str = "ledger") -> Path:
    """Run ``esrc new-backend NAME --dir DIRECTORY`` and return the project's path."""
    assert main(["new-backend", name, "--dir", str(directory)]) == 0
    return directory / f"esrc-{name.replace('_', '-')}"


def install(project: Path, site: Path) -> dict[str, str]:
    """Write the ``.dist-info`` of ``project``'s pyproject.toml into ``site`` and return
    an environment whose ``PYTHONPATH`` holds ``site`` and the project's ``src``."""
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    info = site / f"{metadata['name'].replace('-', '_')}-{metadata['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {metadata['name']}\nVersion: {metadata['version']}\n"
    )
    points = "".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items())
        for group, entries in metadata["entry-points"].items()
    )
    (info / "entry_points.txt").write_text(points)
    path = os.pathsep.join([str(site), str(project / "src"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def run_tests(project: Path, environment: dict[str, str]) -> Outcome:
    """Run pytest on the project's tests, in the project, as its author would."""
    report = project / "report.xml"
    finished = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        check=False,
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    results = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        result, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                result, message = child.tag, child.get("message", "") + (child.text or "")
        results[case.get("name", "")] = (result, message)
    return Outcome(finished.returncode, results, finished.stdout + finished.stderr)


def _methods(source: str, class_name: str) -> dict[str, str]:
    """Each method of ``class_name`` in ``source`` with its parameters, unparsed."""
    (cls,) = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == class_name
    ]
    return {
        node.name: ast.unparse(node.args) for node in cls.body if isinstance(node, ast.FunctionDef)
    }


def test_the_skeleton_runs_the_testkit_and_fails_on_its_stubs(tmp_path: Path) -> None:
    """Generated as it is, the project's test module runs the acceptance suite through
    the plugin found by its entry point, and the suite fails because every method
    raises NotImplementedError; nothing fails for another reason."""
    project = generate(tmp_path / "work")
    outcome = run_tests(project, install(project, tmp_path / "site"))

    assert outcome.status == 1, outcome.output
    failed = outcome.named("failed") + outcome.named("error")
    assert len(failed) > 20, f"only {failed} failed:\n{outcome.output}"
    other = [n for n in failed if "NotImplementedError" not in outcome.results[n][1]]
    assert not other, f"failed for another reason than the stubs: {other}\n{outcome.output}"
    skipped = {outcome.results[n][1].split(" (declared")[0] for n in outcome.named("skipped")}
    assert all("does not declare" in reason for reason in skipped), skipped


def test_the_skeleton_is_the_event_store_protocol(tmp_path: Path) -> None:
    """The generated store has every method of EventStore, with its parameters and
    its docstring's first line, and the plugin claims the scheme."""
    project = generate(tmp_path, "redis_streams")
    package = project / "src" / "esrc_redis_streams"
    source = (package / "store.py").read_text()
    methods = _methods(source, "RedisStreamsEventStore")
    protocol = [n for n, v in vars(EventStore).items() if callable(v) and not n.startswith("_")]
    assert set(protocol) <= set(methods)
    for name in protocol:
        doc = (getattr(EventStore, name).__doc__ or "").strip().splitlines()[0]
        assert doc in source, f"{name}: the contract's first line is missing"
        assert f'raise NotImplementedError("RedisStreamsEventStore.{name}")' in source
    assert 'schemes=("redis-streams",)' in (package / "plugin.py").read_text()
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["esrc"] == {
        "redis_streams": "esrc_redis_streams.plugin"
    }
    assert any(d.startswith("esrc-testkit") for d in pyproject["dependency-groups"]["dev"])
    assert (package / "py.typed").exists()
    assert len((project / "tests" / "test_store.py").read_text().splitlines()) <= 16


def test_filled_in_by_following_the_guide_the_backend_passes(tmp_path: Path) -> None:
    """With the store filled in (tests/cli/ledger_store.py: the skeleton's methods,
    and the capability protocols the guide lists) and its capabilities declared, the
    generated test module passes the whole acceptance suite; only the capabilities
    left undeclared are skipped."""
    project = generate(tmp_path / "work")
    package = project / "src" / "esrc_ledger"
    skeleton = (package / "store.py").read_text()
    filled = LEDGER_STORE.read_text()
    stubs, bodies = _methods(skeleton, "LedgerEventStore"), _methods(filled, "LedgerEventStore")
    assert {n: bodies.get(n) for n in stubs} == stubs, "the fill changed a signature"
    (package / "store.py").write_text(filled)
    plugin = package / "plugin.py"
    declared = (
        "frozenset({Capability.SNAPSHOTS, Capability.OUTBOX, Capability.WAIT, "
        "Capability.READ_AHEAD, Capability.THREADS, Capability.RELAY_LOCK, Capability.INSPECT})"
    )
    text = plugin.read_text()
    assert "CAPABILITIES: frozenset[Capability] = frozenset()\n" in text
    plugin.write_text(text.replace("= frozenset()\n", f"= {declared}\n", 1))

    outcome = run_tests(project, install(project, tmp_path / "site"))

    assert outcome.status == 0, outcome.output
    assert len(outcome.named("passed")) > 60, outcome.output
    claimed = {"snapshots", "outbox", "wait", "read-ahead", "threads", "relay-lock", "inspect"}
    for name in outcome.named("skipped"):
        reason = outcome.results[name][1]
        missing = re.match(r"the backend does not declare the ((?:'[\w-]+'(?:, )?)+) capab", reason)
        assert missing, f"{name} skipped for another reason: {reason}"
        assert not set(re.findall(r"'([\w-]+)'", missing[1])) & claimed, reason


def test_an_existing_directory_or_a_bad_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run into the same directory changes nothing and exits 2; so does a
    name or scheme that cannot be a distribution or a URL scheme."""
    project = generate(tmp_path)
    (project / "README.md").write_text("mine")
    capsys.readouterr()
    assert main(["new-backend", "ledger", "--dir", str(tmp_path)]) == EXIT_USAGE
    assert "exists already" in capsys.readouterr().err
    assert (project / "README.md").read_text() == "mine"
    for argv in (["Ledger"], ["esrc-ledger"], ["led ger"], ["ledger2", "--scheme", "a+b"]):
        assert main(["new-backend", *argv, "--dir", str(tmp_path)]) == EXIT_USAGE, argv
        assert "new-backend: error:" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["esrc-ledger"]
