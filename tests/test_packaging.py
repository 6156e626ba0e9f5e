"""The distributions' metadata rules, read from their pyproject.toml files: one version
for the family, esrc pins to its compatible range, the LICENSE, the metadata an index
shows, descriptions whose links work from an index, what is not published.

Building and installing the distributions is ``nox -s build``; every import being
declared is ``nox -s deps``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import esrc

ROOT = Path(__file__).resolve().parent.parent
_UV = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
PUBLISHED = [ROOT, *(ROOT / member for member in _UV["workspace"]["members"])]
"""The project directories of the published distributions: the umbrella at the root
and the workspace's members (what ``uv build --all-packages`` builds)."""
UNPUBLISHED = [ROOT / source["path"] for source in _UV["sources"].values() if "path" in source]
"""The development environment's path sources: the example application and the toy
backend."""

DO_NOT_UPLOAD = "Private :: Do Not Upload"
PYTHONS = ["3.11", "3.12", "3.13"]
"""The Pythons the classifiers name: the ones nox tests on."""
URLS = {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}


def _project(directory: Path) -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((directory / "pyproject.toml").read_text())["project"]
    return project


def _ids(directories: list[Path]) -> list[str]:
    return [str(d.relative_to(ROOT)) if d != ROOT else "esrc" for d in directories]


VERSION = _project(ROOT)["version"]


def _compatible_range(version: str) -> SpecifierSet:
    """``>=version,<next breaking``: the next minor below 1.0, the next major after."""
    major, minor = (int(part) for part in version.split(".")[:2])
    upper = f"0.{minor + 1}" if major == 0 else f"{major + 1}"
    return SpecifierSet(f">={version},<{upper}")


def _requirements(project: dict[str, Any]) -> list[tuple[str, Requirement]]:
    """Every requirement of a project with where it is: ``dependencies`` or the extra."""
    found = [("dependencies", Requirement(r)) for r in project.get("dependencies", [])]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        found += [(f"extra {extra!r}", Requirement(r)) for r in requirements]
    return found


def test_the_toy_backend_and_the_example_are_not_built_with_the_family() -> None:
    """They are path sources of the development environment, not workspace members (so
    ``uv build --all-packages`` leaves them out), and an index refuses them anyway."""
    names = {_project(d)["name"] for d in UNPUBLISHED}
    assert names == {"esrc-toy", "esrc-example-financing"}
    for directory in UNPUBLISHED:
        assert DO_NOT_UPLOAD in _project(directory)["classifiers"], directory
    for directory in PUBLISHED:
        assert DO_NOT_UPLOAD not in _project(directory).get("classifiers", []), directory


@pytest.mark.parametrize("directory", PUBLISHED + UNPUBLISHED, ids=_ids(PUBLISHED + UNPUBLISHED))
def test_one_version_and_esrc_pins_to_its_compatible_range(directory: Path) -> None:
    """Every distribution carries the umbrella's version, and each requirement on an
    esrc distribution allows exactly the releases compatible with it."""
    project = _project(directory)
    assert project["version"] == VERSION
    want = _compatible_range(VERSION)
    for where, requirement in _requirements(project):
        if requirement.name.startswith("esrc"):
            assert requirement.specifier == want, (
                f"{project['name']} {where}: {requirement} should pin {want}"
            )


def test_import_esrc_gives_the_family_version() -> None:
    """``esrc.__version__`` is the version in the pyproject files."""
    assert esrc.__version__ == VERSION


def test_the_umbrella_keeps_the_testkit_out_of_production() -> None:
    """Plain ``esrc`` brings the core and the in-memory and SQL backends; pytest and
    hypothesis come with the ``testkit`` extra only."""
    project = _project(ROOT)
    assert {Requirement(r).name for r in project["dependencies"]} == {
        "esrc-core",
        "esrc-memory",
        "esrc-sqlalchemy",
    }
    assert [Requirement(r).name for r in project["optional-dependencies"]["testkit"]] == [
        "esrc-testkit"
    ]


@pytest.mark.parametrize("directory", PUBLISHED + UNPUBLISHED, ids=_ids(PUBLISHED + UNPUBLISHED))
def test_psycopg_binary_only_in_an_extra_that_says_so(directory: Path) -> None:
    """``psycopg[binary]`` (a self-contained libpq) only in an extra named ``*-binary``;
    the plain ``postgresql`` extras take psycopg as the user has it."""
    project = _project(directory)
    for where, requirement in _requirements(project):
        if requirement.name == "psycopg" and "binary" in requirement.extras:
            assert where.endswith("-binary'"), f"{project['name']} {where}: {requirement}"


@pytest.mark.parametrize("directory", PUBLISHED, ids=_ids(PUBLISHED))
def test_published_metadata(directory: Path) -> None:
    """MIT with the repository's LICENSE beside the pyproject.toml (so it is in the
    sdist and the wheel), the project URLs, keywords, and classifiers for the Pythons
    tested and the type hints shipped."""
    project = _project(directory)
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (directory / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()
    assert set(project["urls"]) == URLS
    assert all(url.startswith("https://") for url in project["urls"].values())
    assert project["keywords"]
    assert project["requires-python"] == f">={PYTHONS[0]}"
    classifiers = set(project["classifiers"])
    for version in PYTHONS:
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Typing :: Typed" in classifiers
    packages = tomllib.loads((directory / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"
    ]["wheel"]["packages"]
    for package in packages:
        assert (directory / package / "py.typed").is_file(), package


_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)")
_AUTOLINK = re.compile(r"<([a-z]+:[^>\s]+)>")


@pytest.mark.parametrize("directory", PUBLISHED, ids=_ids(PUBLISHED))
def test_descriptions_link_only_absolute_urls(directory: Path) -> None:
    """An index shows the README alone: every link in it is an https URL (the docs site
    or the repository), never a path into the checkout."""
    readme = directory / _project(directory)["readme"]
    text = readme.read_text()
    targets = _LINK.findall(text) + _AUTOLINK.findall(text)
    relative = [t for t in targets if not t.startswith("https://")]
    assert not relative, f"{readme.relative_to(ROOT)}: relative links {relative}"
