"""environment.yml, pyproject, constraints, Makefile and CI agree with each other."""
import tomllib
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_parses_and_installs_the_package_with_existing_extras():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    deps = env["dependencies"]
    assert any(str(d).startswith("python=3.11") for d in deps)
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "-c constraints.txt" in pip_section
    editable = next(line for line in pip_section if line.startswith("-e ."))
    extras = editable.split("[", 1)[1].rstrip("]").split(",")
    assert set(extras) <= set(pyproject()["project"]["optional-dependencies"]), extras


def test_extras_are_installed_here_within_their_ranges():
    for extra in ("notebooks", "test"):
        for spec in pyproject()["project"]["optional-dependencies"][extra]:
            req = Requirement(spec)
            assert req.specifier.contains(metadata.version(req.name), prereleases=True), spec


def test_constraints_pin_what_pyproject_asks_for():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line:
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    for spec in project["dependencies"] + extras["notebooks"] + extras["test"]:
        req = Requirement(spec)
        name = req.name.lower()
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name]), f"pin {name}=={pins[name]} violates {spec}"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "apt-get install" in ci and "chromium" in ci and "KDLAB_REQUIRE_BROWSER=1" in ci, \
        "CI installs Debian's Chromium and refuses to skip the browser tests"
    assert "make test" in (ROOT / "README.md").read_text()
    assert "make lab" in (ROOT / "README.md").read_text()
