"""standins/docker-client.sh is POSIX sh: make runs it on macOS, whose /bin/sh and bash are
bash 3.2 (no `declare -A`). Checked with `shellcheck --shell=sh` and run under dash, with
stand-in docker clients on a PATH that holds nothing else (no docker daemon needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.container.dockerutil import STANDINS_DIR
from tests.support import require_tool

SCRIPT = STANDINS_DIR / "docker-client.sh"

# A docker client: `buildx version` works if BUILDX=1, `version --format` prints VERSION.
STUB = """#!/bin/sh
echo "$0 $*" >> "{log}"
case "$1" in
  buildx) [ "{buildx}" = 1 ] ;;
  version) echo "{version}" ;;
  *) exit 1 ;;
esac
"""


def client(directory: Path, log: Path, *, buildx: bool = False, version: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "docker"
    path.write_text(STUB.format(log=log, buildx=int(buildx), version=version))
    path.chmod(0o755)
    return path


def pick(path_dirs: list[Path], tmp_path: Path, shell: str) -> str:
    """The script's answer under `shell`, with PATH = path_dirs + readlink only."""
    tools = tmp_path / "tools"
    if not tools.exists():
        tools.mkdir()
        readlink = shutil.which("readlink")
        assert readlink is not None
        (tools / "readlink").symlink_to(readlink)
    env = {"PATH": os.pathsep.join(map(str, [*path_dirs, tools])), "HOME": str(tmp_path)}
    done = subprocess.run(
        [shell, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stderr == "", done.stdout + done.stderr
    return done.stdout.strip()


@pytest.fixture(params=["dash", "sh"])
def shell(request: pytest.FixtureRequest) -> str:
    return require_tool(str(request.param), "apt-get install dash")


def test_passes_shellcheck_as_posix_sh() -> None:
    shellcheck = require_tool("shellcheck", "apt-get install shellcheck")
    assert SCRIPT.read_text().startswith("#!/bin/sh\n")
    done = subprocess.run(
        [shellcheck, "--shell=sh", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_client_without_buildx_is_passed_over_for_docker_20_10(
    tmp_path: Path, shell: str
) -> None:
    log = tmp_path / "calls.log"
    newer = client(tmp_path / "newer", log, version="29.0.1")
    debian = client(tmp_path / "debian", log, version="20.10.24+dfsg1")
    assert pick([newer.parent, debian.parent], tmp_path, shell) == str(debian)
    assert pick([debian.parent, newer.parent], tmp_path, shell) == str(debian)


def test_the_first_client_with_buildx_wins(tmp_path: Path, shell: str) -> None:
    log = tmp_path / "calls.log"
    plugin = client(tmp_path / "plugin", log, buildx=True, version="29.0.1")
    debian = client(tmp_path / "debian", log, version="20.10.24")
    assert pick([plugin.parent, debian.parent], tmp_path, shell) == str(plugin)


def test_the_same_client_twice_on_path_is_asked_once(tmp_path: Path, shell: str) -> None:
    log = tmp_path / "calls.log"
    real = client(tmp_path / "real", log, version="29.0.1")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "docker").symlink_to(real)
    assert pick([real.parent, linked, real.parent], tmp_path, shell) == "docker"
    calls = log.read_text().splitlines()
    assert calls == [f"{real} buildx version", f"{real} version --format {{{{.Client.Version}}}}"]


def test_no_usable_client_falls_back_to_plain_docker(tmp_path: Path, shell: str) -> None:
    log = tmp_path / "calls.log"
    odd = client(tmp_path / "odd", log, version="not-a-version")
    old = client(tmp_path / "old", log, version="17.03.2")
    (tmp_path / "empty").mkdir()
    assert pick([tmp_path / "empty", odd.parent, old.parent], tmp_path, shell) == "docker"
    assert pick([tmp_path / "empty"], tmp_path, shell) == "docker"


def test_make_runs_it_with_sh() -> None:
    makefile = (STANDINS_DIR.parent.parent.parent / "make/container.mk").read_text()
    assert "$(shell sh tests/container/standins/docker-client.sh)" in makefile
