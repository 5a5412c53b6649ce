"""compose.yaml and the Dockerfile, checked offline (no Docker engine needed).

compose.yaml must validate against the Compose specification's schema, and every command its
services run must name things that exist in this project: the files the Dockerfile copies, the WSGI
app and gunicorn config gunicorn loads, the flask CLI commands and options (looked up in the app's
own CLI), and the rq worker's options and queues. Also: every environment variable the code reads
is documented in .env.example.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from ruamel.yaml import YAML

from api import create_app
from tests.catalog.test_config import REMOVED

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"postgres", "redis", "migrate", "api", "worker", "cron"}
EDGE = {"varnish"}  # the edge profile's: Varnish in front of the API
SCALE_OUT = {"api-2", "lb"}  # the scale-out profile's: a second API instance and a load balancer
QUEUES = ["high", "default", "low"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return YAML(typ="safe").load((ROOT / "compose.yaml").read_text())


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def commands(service: dict) -> list[list[str]]:
    """The argv lists a service runs: its command, with `sh -c "a && b"` split into a and b."""
    command = service["command"]
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        return [shlex.split(part) for part in argv[2].split("&&")]
    return [argv]


def test_compose_file_matches_the_compose_spec():
    check = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(  # noqa: S603
        [str(check), "--builtin-schema", "vendor.compose-spec", str(ROOT / "compose.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_health_and_start_order(compose):
    services = compose["services"]
    assert set(services) == SERVICES | SCALE_OUT | EDGE
    assert {name for name in services if services[name].get("profiles")} == SCALE_OUT | EDGE
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    for name in ("postgres", "redis", "api"):
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_app_services_run_in_production_with_required_secrets(compose):
    raw = (ROOT / "compose.yaml").read_text()
    for var in ("SHELF_API_TOKENS", "SHELF_SECRET_KEY"):
        assert re.search(rf"{var}: \$\{{{var}:\?", raw), f"{var} must be required (${{{var}:?...}})"
    for name in ("migrate", "api", "api-2", "worker"):
        env = compose["services"][name]["environment"]
        assert env["SHELF_ENV"] == "production"
        assert {"DATABASE_URL", "REDIS_URL", "SHELF_API_TOKENS", "SHELF_SECRET_KEY"} <= set(env)


def test_dockerfile_copies_existing_files_and_runs_unprivileged():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    copies = [shlex.split(args) for op, args in instructions if op == "COPY"]
    assert copies
    for *sources, _dest in copies:
        for source in sources:
            assert not source.startswith("--"), "no multi-stage copies expected"
            assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
            assert source not in ignored, f".dockerignore drops {source}"
    assert any(op == "RUN" and "pip install -r requirements.txt" in args for op, args in instructions)
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    for package in ("api", "migrations"):
        assert any(package in copy[:-1] for copy in copies), f"the image lacks {package}/"


def test_flask_commands_exist_in_the_app_cli(compose, base_settings):
    app = create_app(base_settings)
    flask_commands = [
        argv
        for name in ("migrate", "api", "worker")
        for argv in commands(compose["services"][name])
        if argv[0] == "flask"
    ]
    assert ["flask", "--app", "api", "db", "upgrade"] in flask_commands
    assert any(argv[3] == "seed" for argv in flask_commands)
    with app.app_context():
        for argv in flask_commands:
            assert argv[1:3] == ["--app", "api"]
            ctx = click.Context(app.cli)
            command: click.Command = app.cli
            words = argv[3:]
            while words and not words[0].startswith("-") and isinstance(command, click.Group):
                sub = command.get_command(ctx, words[0])
                assert sub is not None, f"no flask command {' '.join(argv[3:])!r} in the app's CLI"
                command, words = sub, words[1:]
            options = {opt for param in command.params for opt in param.opts}
            for word in words:
                if word.startswith("-"):
                    assert word in options, f"{' '.join(argv)}: no option {word}"
    app.extensions["shelf.engine"].dispose()


@pytest.mark.system
def test_gunicorn_loads_the_app_with_the_config(compose):
    argvs = [argv for argv in commands(compose["services"]["api"])]
    assert argvs == [["gunicorn", "-c", "gunicorn.conf.py", "api:create_app()"]]
    assert (ROOT / "gunicorn.conf.py").is_file()
    dockerfile_cmd = [args for op, args in dockerfile_instructions() if op == "CMD"][-1]
    assert "gunicorn.conf.py" in dockerfile_cmd
    env = {**os.environ, "SHELF_ENV": "development", "SHELF_HOST": "0.0.0.0"}  # noqa: S104
    result = subprocess.run(  # noqa: S603
        [str(Path(sys.executable).parent / "gunicorn"), "--check-config", *argvs[0][1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_worker_runs_rq_with_scheduler_on_the_named_queues(compose):
    from rq.cli.cli import main as rq_cli

    (argv,) = commands(compose["services"]["worker"])
    assert argv[:2] == ["rq", "worker"]
    worker = rq_cli.commands["worker"]
    options = {opt: param for param in worker.params for opt in param.opts}
    args, rest = argv[2:], []
    while args:
        word = args.pop(0)
        if word.startswith("-"):
            assert word in options, f"rq worker has no option {word}"
            if not options[word].is_flag:
                args.pop(0)
        else:
            rest.append(word)
    assert "--with-scheduler" in argv
    assert argv[argv.index("--serializer") + 1] == "json"
    assert argv[argv.index("--worker-class") + 1] == "jobs.worker.Worker"
    assert rest == QUEUES


def test_cron_runs_the_project_periodic_job_loop(compose):
    (argv,) = commands(compose["services"]["cron"])
    assert argv == ["python", "-m", "jobs.cron"]
    assert importlib.util.find_spec("jobs.cron") is not None


ENV_READERS = [
    "api",
    "cache",
    "catalog",
    "jobs",
    "scripts",
    "tests",
    "gunicorn.conf.py",
    "Makefile",
    "compose.yaml",
]


def test_env_example_documents_every_variable_read():
    names: set[str] = set()
    pattern = re.compile(r"\b(SHELF_[A-Z0-9_]+|DATABASE_URL|REDIS_URL)\b")
    for entry in ENV_READERS:
        path = ROOT / entry
        files = [path] if path.is_file() else [*path.rglob("*.py"), *path.rglob("*.sh")]
        for file in files:
            names |= set(pattern.findall(file.read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert sorted(names - documented - set(REMOVED)) == []  # REMOVED: named to check they are not read


def haproxy_config() -> dict[str, list[str]]:
    """deploy/haproxy.cfg as {section header: its lines}."""
    sections: dict[str, list[str]] = {}
    current = None
    for raw in (ROOT / "deploy" / "haproxy.cfg").read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not raw.startswith(" "):
            current = line.strip()
            sections[current] = []
        else:
            sections[current].append(line.strip())
    return sections


def test_scale_out_runs_a_second_api_instance_behind_a_readiness_checking_balancer(compose):
    services = compose["services"]
    api, second, lb = services["api"], services["api-2"], services["lb"]
    assert second["command"] == api["command"]
    assert second["environment"] == api["environment"]
    assert not second["ports"], "only the balancer publishes a port in the profile"
    (mount,) = lb["volumes"]
    source, target, _mode = mount.split(":")
    assert (ROOT / source).is_file()
    assert target == "/usr/local/etc/haproxy/haproxy.cfg"
    assert {name: dep["condition"] for name, dep in lb["depends_on"].items()} == {
        "api": "service_healthy",
        "api-2": "service_healthy",
    }
    config = haproxy_config()
    (bind,) = [line for line in config["frontend shelf"] if line.startswith("bind")]
    assert lb["ports"][0].endswith(":" + bind.rsplit(":", 1)[1])
    backend = config["backend api"]
    assert "option httpchk GET /readyz" in backend
    assert "http-check expect status 200" in backend
    servers = [line.split()[2] for line in backend if line.startswith("server ")]
    port = api["environment"]["SHELF_PORT"]
    assert servers == [f"api:{port}", f"api-2:{port}"]
    assert all(line.endswith(" check") for line in backend if line.startswith("server "))


def test_redis_keeps_every_acknowledged_write_on_disk(compose):
    redis_service = compose["services"]["redis"]
    argv = redis_service["command"]
    options = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert options == {"--save": "", "--appendonly": "yes", "--appendfsync": "always"}
    assert any(volume.endswith(":/data") for volume in redis_service["volumes"])
