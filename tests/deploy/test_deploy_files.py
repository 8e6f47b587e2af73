"""Deployment files are checked with the linters that run without a container engine:
`systemd-analyze verify` for the units, a Dockerfile parser (PyPI `dockerfile`, Docker's own
Go parser) plus our rules for the Dockerfiles, and structural checks of the compose file:
health checks that mean something, two aggregators on one PostgreSQL, no password on any
command line, secret folders git-ignored. Building images is slow: tests/deploy/test_containers.py
does it when VIGIL_TEST_CONTAINERS=1."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKER = DEPLOY / "docker"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
DOCKERFILES = sorted(p for p in DOCKER.glob("Dockerfile.*") if "." not in p.name.removeprefix("Dockerfile."))
# a DSN with a password: scheme://user:password@ or password=...
PASSWORD_IN_DSN = re.compile(r"postgres(?:ql)?://[^/\s:@]+:[^@\s]+@|\bpassword\s*=", re.IGNORECASE)


def _compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _argv(value) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else str(value).split()


@functools.cache
def _parse(path: Path) -> list[SimpleNamespace]:
    """The Dockerfile's instructions (``cmd``, ``value``, ``original``, ...), parsed by Docker's
    Go parser in a child process: a Go runtime loaded into the test process takes over its
    SIGPIPE and SIGSEGV handling (it once turned a broken pipe in a later test into a crash that
    faulthandler could not report; bench/README.md, "One Core per process")."""
    if importlib.util.find_spec("dockerfile") is None:
        pytest.skip("PyPI package 'dockerfile' (Docker's parser) not installed")
    code = "import dockerfile, json, sys; print(json.dumps([c._asdict() for c in dockerfile.parse_file(sys.argv[1])]))"
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{path.name}: {done.stderr[-2000:]}"
    return [SimpleNamespace(**c) for c in json.loads(done.stdout)]


def _base_images(cmds) -> list[str]:
    """Each FROM's image with ARG defaults (``ARG BASE=...`` then ``FROM ${BASE}``) filled in."""
    args: dict[str, str] = {}
    out = []
    for c in cmds:
        if c.cmd == "ARG" and "=" in c.value[0]:
            k, v = c.value[0].split("=", 1)
            args.setdefault(k, v)
        elif c.cmd == "FROM":
            out.append(re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), c.value[0]))
    return out


# ----------------------------------------------------------------------------- systemd
def test_there_are_units_and_dockerfiles():
    assert {u.name for u in UNITS} == {"vigil-aggregator.service", "vigil-console.service", "vigil-edge.service"}
    assert {d.name for d in DOCKERFILES} == {"Dockerfile.cpu", "Dockerfile.gpu", "Dockerfile.postgres"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_unit_verifies_clean(unit: Path, tmp_path: Path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze missing (Debian package systemd)")
    # verify checks that ExecStart exists: point it at this environment's vigil
    vigil = Path(sys.executable).with_name("vigil")
    text = unit.read_text().replace("/opt/vigil/.venv/bin/vigil", str(vigil))
    (tmp_path / unit.name).write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / unit.name)], capture_output=True, text=True, timeout=60
    )
    own = [line for line in (proc.stdout + proc.stderr).splitlines() if unit.name in line]
    assert proc.returncode == 0 and not own, proc.stdout + proc.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_units_run_unprivileged_hardened_and_restart_with_limits(unit: Path):
    text = unit.read_text()
    for line in (
        "User=vigil",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "Restart=on-failure",
        "StartLimitBurst=",
        "KillSignal=SIGTERM",
    ):
        assert line in text, f"{unit.name}: missing {line}"
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert not PASSWORD_IN_DSN.search(exec_start) and "--dsn " not in exec_start, exec_start


def test_aggregator_and_console_units_read_postgres_from_the_dsn_file():
    for name in ("vigil-aggregator.service", "vigil-console.service"):
        exec_start = next(
            line for line in (DEPLOY / "systemd" / name).read_text().splitlines() if line.startswith("ExecStart=")
        )
        assert "--dsn-file /etc/vigil/pg.dsn" in exec_start, name
        assert "--db " not in exec_start, name
    agg = (DEPLOY / "systemd" / "vigil-aggregator.service").read_text()
    assert "--status-file /run/vigil/aggregator.status" in agg and "RuntimeDirectory=vigil" in agg
    console = (DEPLOY / "systemd" / "vigil-console.service").read_text()
    assert "--host 127.0.0.1" in console and "--trusted-proxy 127.0.0.1" in console
    install = (DEPLOY / "INSTALL.md").read_text()
    for needle in ("scripts/pg-local.sh", "--dsn-file /etc/vigil/pg.dsn", "vigil-console.service", "nginx"):
        assert needle in install, f"INSTALL.md does not mention {needle}"


# ----------------------------------------------------------------------------- Dockerfiles
@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_parses_and_follows_our_rules(path: Path):
    cmds = _parse(path)
    assert "dockerfile" not in sys.modules  # the Go parser ran in a child process (see _parse)
    names = [c.cmd for c in cmds]
    froms = _base_images(cmds)
    assert froms and all(":" in f and not f.endswith(":latest") and "$" not in f for f in froms), (
        f"{path.name}: base image must be pinned (an ARG default counts): {froms}"
    )
    users = [c.value[0] for c in cmds if c.cmd == "USER"]
    assert "USER" in names and names.index("USER") < names.index("ENTRYPOINT"), (
        f"{path.name}: must drop root before ENTRYPOINT"
    )
    if path.name == "Dockerfile.postgres":
        # like the official image: root only to read the secret and own the volume, then setpriv
        entry = (DOCKER / "postgres" / "entrypoint.sh").read_text()
        assert "exec setpriv --reuid=postgres" in entry
    else:
        assert users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in names
    for c in cmds:
        if c.cmd == "RUN" and "apt-get install" in c.value[0]:
            assert "--no-install-recommends" in c.value[0] and "rm -rf /var/lib/apt/lists" in c.value[0], c.original
        if c.cmd == "RUN" and "pip install" in c.value[0]:
            assert "opencv-python " not in c.value[0] + " "  # exactly one OpenCV (the headless wheel)
    assert "ADD" not in names  # COPY only: nothing fetched at build time by ADD
    assert not any(c.cmd == "ENV" and "PASSWORD" in " ".join(c.value).upper() for c in cmds)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_healthcheck_means_something(path: Path):
    (check,) = [c for c in _parse(path) if c.cmd == "HEALTHCHECK"]
    text = " ".join(check.value)
    assert check.value[0] == "CMD" and "--help" not in text and "--version" not in text, text
    if path.name in ("Dockerfile.cpu", "Dockerfile.gpu"):
        assert "healthcheck.py" in text
    else:
        assert "pg_isready" in text


def test_vigil_images_copy_every_package_dir():
    """`pip install .` needs every folder of pyproject's package-dir in the image."""
    text = (REPO / "pyproject.toml").read_text()
    dirs = set(re.findall(r'"vigil(?:\.\w+)?" = "(\w+)"', text))
    assert dirs >= {"vigil", "edge", "alerts", "plates"}
    for name in ("Dockerfile.cpu", "Dockerfile.gpu"):
        copied = {c.value[0] for c in _parse(DOCKER / name) if c.cmd == "COPY" and len(c.value) == 2}
        assert dirs <= copied, f"{name} does not COPY {sorted(dirs - copied)}"


def _python_of_base(image: str) -> tuple[int, int] | None:
    """The python3 version a base image ships, from its well-known name; None when unknown."""
    m = re.match(r"(?:docker\.io/(?:library/)?)?python:(\d+)\.(\d+)", image)
    if m:
        return int(m.group(1)), int(m.group(2))
    known = {"ubuntu24.04": (3, 12), "ubuntu22.04": (3, 10), "ubuntu20.04": (3, 8), "bookworm": (3, 11)}
    for tag, version in known.items():
        if tag in image:
            return version
    if re.search(r"nvidia/tensorrt:2[34]\.", image):  # NGC 23.x/24.x images: Ubuntu 22.04
        return (3, 10)
    return None


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_vigil_image_bases_have_python_311_or_newer(name: str):
    cmds = _parse(DOCKER / name)
    (base,) = _base_images(cmds)
    version = _python_of_base(base)
    runs = " ".join(c.value[0] for c in cmds if c.cmd == "RUN")
    explicit = re.search(r"apt-get install[^&]*\bpython3\.(1[1-9])\b", runs)
    assert version is not None or explicit, f"{name}: cannot tell the Python of {base}"
    assert explicit or version >= (3, 11), f"{name}: {base} has Python {version}; Vigil needs >= 3.11"
    # and the image says so when it is built
    assert "sys.version_info >= (3, 11)" in runs


def test_gpu_dockerfile_says_it_is_not_built_in_ci():
    text = (DOCKER / "Dockerfile.gpu").read_text()
    assert "not built in our CI" in text and "onnxruntime-gpu" in text


# ----------------------------------------------------------------------------- compose
def test_compose_has_postgres_two_aggregators_console_and_edge():
    doc = _compose()
    services = doc["services"]
    assert set(services) == {"postgres", "aggregator-a", "aggregator-b", "console", "edge"}
    assert "postgres" in services["postgres"]["image"]
    for name in ("aggregator-a", "aggregator-b"):
        s = services[name]
        argv = _argv(s["command"])
        assert argv[0] == "aggregator"
        assert argv[argv.index("--dsn-file") + 1] == "/run/secrets/pg_dsn", name
        assert "--keys" in argv and "--db" not in argv
        assert s["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "pg_dsn" in s["secrets"]
    # the same database for both (active-active), and different host ports
    a, b = services["aggregator-a"], services["aggregator-b"]
    assert _argv(a["command"]) == _argv(b["command"])
    assert not set(a["ports"]) & set(b["ports"])
    console = _argv(services["console"]["command"])
    assert console[0] == "console" and "--dsn-file" in console
    assert console.count("--stream") == 2  # follows both aggregators
    edge = services["edge"]
    assert any(v.startswith("../../data/vtest.avi:") for v in edge["volumes"])
    node = yaml.safe_load((DOCKER / "stack" / "pets-edge.yaml").read_text())
    assert len(node["aggregator"]["endpoints"]) == 2
    assert {e.split("//")[1].split(":")[0] for e in node["aggregator"]["endpoints"]} == {"aggregator-a", "aggregator-b"}
    assert node["cameras"][0]["source"] == "/data/vtest.avi"


def test_compose_healthchecks_mean_something():
    services = _compose()["services"]
    for name, s in services.items():
        test = _argv(s.get("healthcheck", {}).get("test"))
        assert test, f"{name}: no healthcheck"
        assert "--help" not in test and "--version" not in test, f"{name}: {test}"
    for name in ("aggregator-a", "aggregator-b"):
        test = _argv(services[name]["healthcheck"]["test"])
        argv = _argv(services[name]["command"])
        status = argv[argv.index("--status-file") + 1]
        assert test[1:5] == ["vigil", "status", "--aggregator", status], test
    # healthcheck.py asks the role in VIGIL_ROLE: the console's is GET /healthz
    assert "healthcheck.py" in " ".join(_argv(services["console"]["healthcheck"]["test"]))
    assert services["console"]["environment"]["VIGIL_ROLE"] == "console"
    assert services["edge"]["environment"]["VIGIL_ROLE"] == "edge"
    assert "healthcheck.py" in " ".join(_argv(services["edge"]["healthcheck"]["test"]))
    assert "pg_isready" in " ".join(_argv(services["postgres"]["healthcheck"]["test"]))


def test_compose_keeps_secrets_in_files_and_off_command_lines():
    doc = _compose()
    services = doc["services"]
    for secret in doc["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    env = services["postgres"]["environment"]
    assert "POSTGRES_PASSWORD" not in env and env["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    for name, s in services.items():
        argv = _argv(s.get("command")) + _argv(s.get("entrypoint"))
        text = " ".join(argv)
        assert not PASSWORD_IN_DSN.search(text) and "--dsn" not in argv, f"{name}: {text}"
        assert "cat /run/secrets" not in text and "$(" not in text, f"{name}: a secret expanded into argv"
        for key, value in (s.get("environment") or {}).items():
            assert "PASSWORD" not in key.upper() or key.upper().endswith("_FILE"), f"{name}: {key}"
            assert not PASSWORD_IN_DSN.search(str(value)), f"{name}: {key}"
        for vol in s.get("volumes", []):
            if "keys" in vol:
                assert vol.startswith("./keys/") and vol.endswith(":ro"), f"{name}: {vol}"


def test_secret_folders_are_git_ignored():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for path in (
        "deploy/docker/secrets/postgres_password",
        "deploy/docker/secrets/pg.dsn",
        "deploy/docker/keys/aggregator/aggregator.key_secret",
        "deploy/docker/extra-ca/proxy.crt",
    ):
        proc = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", path], capture_output=True, timeout=30)
        assert proc.returncode == 0, f"{path} is not git-ignored"


def test_compose_config_validates_when_docker_compose_is_available():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker compose client not installed")
    secrets = DOCKER / "secrets"
    created = not secrets.exists()
    secrets.mkdir(exist_ok=True)
    made = []
    for name in ("postgres_password", "pg.dsn"):
        if not (secrets / name).exists():
            (secrets / name).write_text("test\n")
            made.append(secrets / name)
    try:
        proc = subprocess.run(
            [docker, "compose", "-f", str(DOCKER / "compose.yaml"), "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        for p in made:
            p.unlink()
        if created:
            secrets.rmdir()
    assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------- scripts
@pytest.mark.parametrize(
    "script",
    [
        "scripts/pg-local.sh",
        "deploy/docker/build-base.sh",
        "deploy/docker/build-images.sh",
        "deploy/docker/stack-smoke.sh",
        "deploy/examples/proxy-smoke.sh",
    ],
)
def test_shell_scripts_are_strict_and_parse(script: str):
    text = (REPO / script).read_text()
    assert "set -euo pipefail" in text
    proc = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def _healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess:
    path = os.environ.get("PATH", "")
    full = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{path}", **env}
    return subprocess.run(
        [sys.executable, str(DOCKER / "healthcheck.py")], capture_output=True, text=True, timeout=60, env=full
    )


def test_container_healthcheck_console_role_asks_healthz():
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            hits.append(self.path)
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = str(server.server_address[1])
        assert _healthcheck({"VIGIL_ROLE": "console", "VIGIL_CONSOLE_PORT": port}).returncode == 0
        assert hits == ["/healthz"]
    finally:
        server.shutdown()
    assert _healthcheck({"VIGIL_ROLE": "console", "VIGIL_CONSOLE_PORT": port}).returncode == 1


def test_container_healthcheck_aggregator_role_reads_the_status_file(tmp_path: Path):
    from vigil.alerts.aggregator.status import write_status

    status = tmp_path / "aggregator.status"
    env = {"VIGIL_ROLE": "aggregator", "VIGIL_STATUS_FILE": str(status)}
    assert _healthcheck(env).returncode == 1  # no file yet
    write_status(status, {"ingest": "tcp://x:5555", "store": "db", "store_ok": True, "counters": {}})
    ok = _healthcheck(env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    write_status(status, {"ingest": "tcp://x:5555", "store": "db", "store_ok": False, "store_error": "gone"})
    assert _healthcheck(env).returncode == 1
    doc = yaml.safe_load(status.read_text())
    doc["updated"] = time.time() - 60
    doc["store_ok"] = True
    status.write_text(yaml.safe_dump(doc))
    assert _healthcheck(env).returncode == 1  # stale


def test_proxy_example_through_nginx_gives_a_secure_session():
    """deploy/examples/proxy-smoke.sh: Debian's nginx with the example's server block and a
    self-signed certificate on loopback, in front of a real console (about 5 s)."""
    for tool in ("nginx", "openssl", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} missing")
    vigil = Path(sys.executable).with_name("vigil")
    proc = subprocess.run(
        ["bash", str(DEPLOY / "examples" / "proxy-smoke.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "VIGIL": str(vigil)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "__Host-vigil_session=<token>" in proc.stderr and "Secure" in proc.stderr
