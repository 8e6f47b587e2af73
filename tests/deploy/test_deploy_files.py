"""Deployment files are checked with the linters that run without a container engine:
`systemd-analyze verify` for the units, a Dockerfile parser (PyPI `dockerfile`, Docker's own
Go parser) plus our rules for the Dockerfiles, and structural checks of the compose file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
DOCKERFILES = sorted((DEPLOY / "docker").glob("Dockerfile.*"))


def test_there_are_units_and_dockerfiles_for_cpu_and_gpu():
    assert {u.name for u in UNITS} == {"vigil-aggregator.service", "vigil-edge.service"}
    assert {d.name for d in DOCKERFILES} == {"Dockerfile.cpu", "Dockerfile.gpu"}


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


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_parses_and_follows_our_rules(path: Path):
    dockerfile = pytest.importorskip("dockerfile", reason="PyPI package 'dockerfile' (Docker's parser) not installed")
    cmds = dockerfile.parse_file(str(path))
    names = [c.cmd for c in cmds]
    froms = [c.value[0] for c in cmds if c.cmd == "FROM"]
    assert froms and all(":" in f and not f.endswith(":latest") for f in froms), (
        f"{path.name}: base image must be pinned: {froms}"
    )
    assert "USER" in names and names.index("USER") < names.index("ENTRYPOINT"), (
        f"{path.name}: must drop root before ENTRYPOINT"
    )
    assert [c for c in cmds if c.cmd == "USER"][-1].value[0] not in ("root", "0")
    assert "HEALTHCHECK" in names
    for c in cmds:
        if c.cmd == "RUN" and "apt-get install" in c.value[0]:
            assert "--no-install-recommends" in c.value[0] and "rm -rf /var/lib/apt/lists" in c.value[0], c.original
        if c.cmd == "RUN" and "pip install" in c.value[0]:
            assert "opencv-python " not in c.value[0] + " "  # exactly one OpenCV (the headless wheel)
    assert "ADD" not in names  # COPY only: nothing fetched at build time by ADD
    assert not any(c.cmd == "ENV" and "PASSWORD" in " ".join(c.value).upper() for c in cmds)


def test_compose_runs_aggregator_with_postgres_and_keeps_secrets_out():
    doc = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    services = doc["services"]
    assert set(services) == {"postgres", "aggregator"}
    assert services["aggregator"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    assert doc["secrets"]["postgres_password"]["file"].startswith("./secrets/")
    env = services["postgres"]["environment"]
    assert "POSTGRES_PASSWORD" not in env and env["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    assert "--keys" in " ".join(services["aggregator"]["command"])


def test_compose_config_validates_when_docker_compose_is_available():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker compose client not installed")
    secrets = DEPLOY / "docker" / "secrets"
    created = not secrets.exists()
    secrets.mkdir(exist_ok=True)
    pw = secrets / "postgres_password"
    made_pw = not pw.exists()
    if made_pw:
        pw.write_text("test\n")
    try:
        proc = subprocess.run(
            [docker, "compose", "-f", str(DEPLOY / "docker" / "compose.yaml"), "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if made_pw:
            pw.unlink()
        if created:
            secrets.rmdir()
    assert proc.returncode == 0, proc.stderr
