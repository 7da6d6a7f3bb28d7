"""requirements.lock pins every dependency pyproject.toml names, exactly, with hashes, inside the
ranges; and the environment the tests run in is the locked one (so a drifted venv fails here)."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, tuple[str, list[str]]]:
    text = (ROOT / "requirements.lock").read_text()
    pins: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9._-]+)==([^\s\\]+)", block)
        if m:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
            pins[canonicalize_name(m.group(1))] = (m.group(2), hashes)
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in ("dev", "package"):
        reqs += [Requirement(r) for r in project["optional-dependencies"].get(extra, [])]
    return reqs


def test_every_dependency_is_pinned_with_hashes_inside_its_range():
    pins = _lock()
    assert len(pins) > 20
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.lock"
        pinned, hashes = pins[name]
        assert req.specifier.contains(pinned, prereleases=True), f"{name}=={pinned} not in {req}"
    for name, (pinned, hashes) in pins.items():
        assert hashes, f"{name}=={pinned} has no sha256 hash"


def test_installed_runtime_versions_are_the_locked_ones():
    """The packages the studio runs on (numerics, Qt) are the locked versions in this venv."""
    drift = []
    pins = _lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        name = canonicalize_name(Requirement(req).name)
        pinned = pins[name][0]
        try:
            installed = version(name)
        except PackageNotFoundError:
            drift.append(f"{name}: locked {pinned}, not installed")
            continue
        if canonicalize_name(installed) != canonicalize_name(pinned) and installed != pinned:
            drift.append(f"{name}: locked {pinned}, installed {installed}")
    assert not drift, "the environment is not the locked one: " + "; ".join(drift)
