"""The app image: its size over the base, its metadata and what is (not) inside it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.container.conftest import BaseImages, report
from tests.container.dockerutil import Docker, history
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.container

MAX_ADDED_BYTES = 60 * 1000 * 1000  # docker's MB
APP_UID = "10001"
CMD = ["gunicorn", "-c", "python:service.gunicorn_conf", "service.main:app"]


def project_version() -> str:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    assert match
    return match.group(1)


def test_image_adds_less_than_60_mb_over_its_base(
    docker: Docker, base_images: BaseImages, app_image: str, pytestconfig: pytest.Config
) -> None:
    base_layers = history(docker, base_images.python)
    app_layers = history(docker, app_image)
    own = app_layers[: len(app_layers) - len(base_layers)]
    # The app's layers sit on the unchanged base: same sizes, same commands, in order.
    assert [(layer.size_bytes, layer.created_by) for layer in app_layers[len(own) :]] == [
        (layer.size_bytes, layer.created_by) for layer in base_layers
    ]
    commands = "\n".join(layer.created_by for layer in own)
    assert "/opt/venv" in commands and "service/" in commands, commands
    added = sum(layer.size_bytes for layer in own)
    by_inspect = int(docker.inspect(app_image)["Size"]) - int(
        docker.inspect(base_images.python)["Size"]
    )
    assert added == by_inspect
    biggest = sorted(own, key=lambda layer: layer.size_bytes, reverse=True)[:3]
    report(
        pytestconfig,
        f"{app_image} adds {added / 1e6:.1f} MB over {base_images.python} "
        f"({len(own)} history entries; largest: "
        + ", ".join(f"{layer.size_bytes / 1e6:.1f} MB {layer.created_by[:40]}" for layer in biggest)
        + ")",
    )
    assert added < MAX_ADDED_BYTES, f"image adds {added / 1e6:.1f} MB (limit 60 MB)"


def test_image_metadata(docker: Docker, app_image: str) -> None:
    config = docker.inspect(app_image)["Config"]
    assert config["User"] == f"{APP_UID}:{APP_UID}"
    assert config["Cmd"] == CMD
    assert not config.get("Entrypoint")
    assert config["StopSignal"] == "SIGTERM"
    assert "8000/tcp" in config["ExposedPorts"]
    health = config["Healthcheck"]
    assert health["Test"][0] == "CMD" and health["Test"][1] == "python"
    assert "/health/live" in " ".join(health["Test"])
    assert not any("curl" in part or "wget" in part for part in health["Test"])
    for key in ("Interval", "Timeout", "StartPeriod"):
        assert health[key] > 0, key
    assert health["Retries"] >= 2
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == project_version()
    assert labels["org.opencontainers.image.source"].startswith(("https://", "git@", "ssh://"))
    assert labels["org.opencontainers.image.description"]


# Runs inside the image as its default user; prints one JSON object.
INSPECT_SCRIPT = r"""
import json, os, shutil, subprocess, sys
found = {}
tools = ["pip", "pip3", "curl", "wget", "gcc", "cc", "make", "strip", "git"]
found["tools_on_path"] = [t for t in tools if shutil.which(t)]
found["pip_module"] = subprocess.run([sys.executable, "-m", "pip", "--version"],
                                     capture_output=True).returncode == 0
found["uid"], found["gid"] = os.getuid(), os.getgid()
writable, not_root = [], []
for top in ("/opt/venv", "/app"):
    for root, dirs, files in os.walk(top):
        for name in [root] + [os.path.join(root, f) for f in files]:
            if os.path.islink(name):
                continue
            if os.access(name, os.W_OK):
                writable.append(name)
            if os.stat(name).st_uid != 0:
                not_root.append(name)
found["writable"], found["not_root"] = writable[:5], not_root[:5]
found["pycache_dirs"] = sum(1 for _root, dirs, _f in os.walk("/opt/venv") if "__pycache__" in dirs)
found["pip_config"] = [p for p in ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "/run/secrets")
                       if os.path.exists(p)]
found["pip_env"] = sorted(k for k in os.environ if k.startswith("PIP_"))
found["site_packages_pip"] = [p for p in sys.path
                              if os.path.isdir(os.path.join(p, "pip"))]
print(json.dumps(found))
"""


def test_image_contents(docker: Docker, app_image: str) -> None:
    out = docker("run", "--rm", "--entrypoint", "python", app_image, "-c", INSPECT_SCRIPT)
    found = json.loads(out.stdout)
    assert found["tools_on_path"] == []
    assert found["pip_module"] is False
    assert found["site_packages_pip"] == []
    assert (found["uid"], found["gid"]) == (int(APP_UID), int(APP_UID))
    assert found["writable"] == [], "files the app could change"
    assert found["not_root"] == [], "files not owned by root"
    assert found["pycache_dirs"] > 0, "no bytecode for the dependencies"
    assert found["pip_config"] == []
    assert found["pip_env"] == []


def test_build_secrets_leave_no_trace(docker: Docker, app_image: str, tmp_path: Path) -> None:
    """The pip settings handed to the build (index URLs, cert) appear in no layer or config."""
    from tests.container.conftest import pip_secret_args

    args = pip_secret_args(tmp_path)
    conf = tmp_path / "pip.conf"
    values = []
    if conf.exists():
        for line in conf.read_text().splitlines():
            _key, sep, value = line.partition("=")
            if sep and value.strip():
                values += value.split()
    values += [arg.split("src=", 1)[1] for arg in args if "src=" in arg]
    metadata = docker("history", "--no-trunc", app_image).stdout + json.dumps(
        docker.inspect(app_image)
    )
    leaked = [value for value in values if len(value) > 3 and value in metadata]
    assert leaked == []
    # And no CA bundle other than the base image's own Debian one.
    out = docker(
        "run",
        "--rm",
        "--entrypoint",
        "python",
        app_image,
        "-c",
        "import glob; print('\\n'.join(glob.glob('/app/**/*.crt', recursive=True)"
        " + glob.glob('/opt/venv/**/*.crt', recursive=True)"
        " + glob.glob('/usr/local/share/ca-certificates/*')))",
    )
    assert out.stdout.strip() == ""


def test_dockerignore_keeps_the_context_small(docker: Docker, app_image: str) -> None:
    out = docker(
        "run",
        "--rm",
        "--entrypoint",
        "python",
        app_image,
        "-c",
        "import os; print('\\n'.join(sorted(os.listdir('/app'))))",
    )
    assert out.stdout.split() == ["service"]
    listing = docker(
        "run",
        "--rm",
        "--entrypoint",
        "python",
        app_image,
        "-c",
        "import os; print('\\n'.join(r for r, d, f in os.walk('/app') if '__pycache__' in r))",
    )
    assert listing.stdout.strip() == ""
