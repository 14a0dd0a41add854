"""The install files agree with each other and with the machine's constraints."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_lists_the_same_requirements_as_pyproject():
    project = _pyproject()["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip_block if not r.startswith(("-e", "-c"))}
    assert listed == wanted
    assert "-c constraints.txt" in pip_block


def _locked() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = [line.split("==") for line in lines if line and not line.startswith("#")]
    assert all(len(pair) == 2 for pair in pairs), "constraints.txt: one name==version per line"
    return {canonicalize_name(name): version for name, version in pairs}


@pytest.mark.parametrize("name, admitted, refused", [
    ("torch", ["2.11.0", "2.14.1", "2.99"], ["2.10.0", "3.0"]),
    ("torchvision", ["0.26.0", "0.29.1"], ["0.25.0", "1.0"]),
])
def test_torch_is_a_range_that_admits_the_gpu_machines_pair(name, admitted, refused):
    deps = {Requirement(r).name: Requirement(r) for r in _pyproject()["project"]["dependencies"]}
    spec = deps[name].specifier
    assert all(spec.contains(v) for v in admitted) and not any(spec.contains(v) for v in refused)


def test_ci_and_the_demo_install_the_locked_torch():
    assert (_locked()["torch"], _locked()["torchvision"]) == ("2.14.1", "0.29.1")


def test_the_lock_pins_every_requirement_within_its_range():
    project = _pyproject()["project"]
    locked = _locked()
    for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in constraints.txt"
        assert requirement.specifier.contains(locked[name], prereleases=True), (name, locked[name])


def test_make_installs_from_the_lock():
    text = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in text and "$(STAMP): pyproject.toml constraints.txt" in text


def test_python_m_pipeline_and_version():
    out = subprocess.run([sys.executable, "-m", "pipeline", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("pipeline ") and out.stdout.split()[1][0].isdigit()


def test_ci_script_calls_make_test():
    text = (ROOT / ".ci" / "run").read_text()
    assert "make test" in text and "set -euo pipefail" in text
