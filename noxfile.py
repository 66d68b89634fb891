"""Test, lint, benchmark and demo sessions for the rem monorepo.

`nox` runs lint, every package's tests (each in an environment holding only that package and the
local packages it declares) and the README demo. `nox -s bench` runs the benchmarks and writes
their figures to bench-results/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = ["rem-core", "rem-eval", "rem-viz", "rem-refine", "rem-models"]
CONSTRAINTS = ["-c", str(ROOT / "constraints.txt")]

nox.options.sessions = ["lint", "tests", "demo"]
nox.options.reuse_existing_virtualenvs = True
# uv installs the torch stack in seconds from its cache where pip takes minutes; plain virtualenv
# and pip are the fallback when uv is not installed.
nox.options.default_venv_backend = "uv|virtualenv"


def _pip_config_for_uv() -> None:
    """Let uv use the package sources pip is configured with (mirrors, find-links).

    uv does not read pip.conf; without this it would miss a local mirror that pip knows about.
    """
    mapping = {
        "index-url": "UV_INDEX_URL",
        "extra-index-url": "UV_EXTRA_INDEX_URL",
        "find-links": "UV_FIND_LINKS",
    }
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return
    found = False
    for line in out.splitlines():
        key, _, value = line.partition("=")
        # Keys look like "global.find-links" or ":env:.find-links" (from PIP_FIND_LINKS).
        env = mapping.get(key.strip().rpartition(".")[2])
        if env and env not in os.environ:
            os.environ[env] = value.strip().strip("'\"")
            found = True
    if found:
        # Like pip, pick the best version across all indexes rather than the first index's.
        os.environ.setdefault("UV_INDEX_STRATEGY", "unsafe-best-match")


_pip_config_for_uv()


def local_requirements(package: str) -> list[str]:
    """The package and every local package it depends on, as paths for one pip call.

    Naming them all in one call means pip never looks for a `rem-*` name on an index.
    """
    seen: list[str] = []

    def visit(name: str) -> None:
        if name in seen:
            return
        meta = tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text())
        for dep in meta["project"]["dependencies"]:
            dep_name = dep.split("@")[0].split(">")[0].split("=")[0].strip()
            if dep_name.startswith("rem-"):
                visit(dep_name)
        seen.append(name)

    visit(package)
    return [str(ROOT / "packages" / name) for name in seen]


def install(session: nox.Session, *packages: str, extras: str = "") -> None:
    paths: list[str] = []
    for package in packages:
        for path in local_requirements(package):
            if path not in paths:
                paths.append(path)
    # The extras apply to the packages asked for, not to their local dependencies.
    specs = [f"{p}[{extras}]" if extras and Path(p).name in packages else p for p in paths]
    session.install(*CONSTRAINTS, *specs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    install(session, package, extras="test")
    # Exit 5 means "no tests collected"; a package without tests yet is not a failure here,
    # and .ci/run still fails if no test ran at all.
    junit_dir = os.environ.get("REM_JUNIT_DIR")
    junit = [f"--junitxml={junit_dir}/{package}.xml"] if junit_dir else []
    session.run(
        "pytest",
        str(ROOT / "packages" / package / "tests"),
        *junit,
        *session.posargs,
        success_codes=[0, 5],
    )


@nox.session
def demo(session: nox.Session) -> None:
    """The README's first command, in a fresh environment."""
    install(session, *PACKAGES)
    session.chdir(session.create_tmp())
    session.run("rem", "demo", "--out", "rem-demo")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; figures land in bench-results/<name>.json and bench-results/SUMMARY.md."""
    install(session, *PACKAGES)
    session.install(*CONSTRAINTS, "pycocotools", "faster-coco-eval", "psutil")
    session.run("python", str(ROOT / "benchmarks" / "run.py"), *session.posargs)
