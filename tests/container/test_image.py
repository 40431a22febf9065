"""The app image: its size over the base, its metadata and what is (not) inside it."""

from __future__ import annotations

import json
import re
import stat
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.container.conftest import STANDIN_PREFIX, BaseImages, report
from tests.container.dockerutil import Docker, history
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.container

MAX_BYTES_ON_STANDIN = 110 * 1000 * 1000  # docker's MB
APP_UID = "10001"
CMD = ["gunicorn", "-c", "python:service.gunicorn_conf", "service.main:app"]


def project_version() -> str:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', text, re.MULTILINE)
    assert match
    return match.group(1)


def test_image_is_at_most_110_mb(
    docker: Docker, base_images: BaseImages, app_image: str, pytestconfig: pytest.Config
) -> None:
    """FROM scratch: the image is its own layers, far smaller than the base it was built on."""
    layers = history(docker, app_image)
    size = int(docker.inspect(app_image)["Size"])
    assert sum(layer.size_bytes for layer in layers) == size
    base_size = int(docker.inspect(base_images.python)["Size"])
    biggest = sorted(layers, key=lambda layer: layer.size_bytes, reverse=True)[:2]
    report(
        pytestconfig,
        f"{app_image}: {size / 1e6:.1f} MB on {base_images.python} ({base_size / 1e6:.1f} MB); "
        + ", ".join(
            f"{layer.size_bytes / 1e6:.1f} MB {layer.created_by[:50]}" for layer in biggest
        ),
    )
    assert size < base_size, "the image holds more than its base"
    if base_images.python.startswith(STANDIN_PREFIX + "/"):
        assert size <= MAX_BYTES_ON_STANDIN, f"{size / 1e6:.1f} MB (limit 110 MB)"


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


# Names that must not be in the image at all (outside directories): shells, package
# managers, compilers and linkers, setuid helpers.
FORBIDDEN = re.compile(
    r"^(sh|bash|dash|ash|zsh|busybox|apt|apt-.*|dpkg|dpkg-.*|gcc|gcc-.*|cc|c\+\+|g\+\+"
    r"|.*-linux-gnu-(gcc|ld|as)(-.*)?|ld|ld\.bfd|ld\.gold|as|su|sudo|mount|umount|perl|perl5.*)$"
)
BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin")


def exported_files(docker: Docker, image: str, out: Path) -> list[tarfile.TarInfo]:
    """Every entry of the image's filesystem, from `docker export` of a created container."""
    name = f"fastapi-app-ct-export-{uuid.uuid4().hex[:8]}"
    docker("create", "--name", name, image)
    try:
        docker("export", "-o", str(out), name)
    finally:
        docker.remove(name)
    with tarfile.open(out) as tar:
        return tar.getmembers()


def test_image_holds_no_shell_package_manager_compiler_or_setuid_file(
    docker: Docker, app_image: str, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    members = exported_files(docker, app_image, tmp_path / "image.tar")
    names = {m.name.strip("/").removeprefix("./"): m for m in members}
    assert "opt/venv/bin/gunicorn" in names and "app/service/main.py" in names
    forbidden = sorted(
        n for n, m in names.items() if not m.isdir() and FORBIDDEN.match(n.rsplit("/", 1)[-1])
    )
    assert forbidden == []
    in_bin_dirs = sorted(
        n for n, m in names.items()
        if not m.isdir() and n.rpartition("/")[0] in BIN_DIRS
        and not n.rpartition("/")[2].startswith("python")
    )  # fmt: skip
    assert in_bin_dirs == [], "only the interpreter belongs in a bin directory"
    setid = sorted(n for n, m in names.items() if m.mode & (stat.S_ISUID | stat.S_ISGID))
    assert setid == []
    not_root = sorted(
        n for n, m in names.items() if m.uid != 0 and not n.startswith(("dev/", "proc/", "sys/"))
    )
    assert not_root == []
    report(pytestconfig, f"{app_image}: {len(members)} files, none of them a shell or setuid")
    # And a shell cannot be run in it.
    done = docker("run", "--rm", "--entrypoint", "sh", app_image, "-c", "true", check=False)
    assert done.returncode != 0 and "executable file not found" in done.stderr, done.stderr


# Loads every extension module there is, the stdlib's lib-dynload and the venv's, from its
# file (dlopen and its init function, not its package's __init__). The loader's errors
# (dlerror: "<library>.so...: cannot open shared object file", "...: undefined symbol") fail
# the test; a module whose init imports a sibling not loaded yet is only counted.
LOAD_ALL_EXTENSIONS = r"""
import importlib.machinery, importlib.util, json, os, re, sysconfig
suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
files = {}
dynload = os.path.join(sysconfig.get_path("stdlib"), "lib-dynload")
for top in (dynload, sysconfig.get_path("platlib")):
    for root, _dirs, names in os.walk(top):
        rel = os.path.relpath(root, top)
        package = [] if rel == "." else rel.split(os.sep)
        for name in names:
            if name.endswith(suffixes):
                files[".".join(package + [name.split(".")[0]])] = os.path.join(root, name)
failed, other = {}, {}
for module, path in sorted(files.items()):
    try:
        spec = importlib.util.spec_from_file_location(module, path)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except ImportError as exc:
        (failed if re.search(r"\.so[.0-9]*: ", str(exc)) else other)[module] = str(exc)
print(json.dumps({"loaded": len(files) - len(failed) - len(other), "failed": failed,
                  "other": sorted(other)}))
"""


def test_every_extension_module_finds_its_libraries(
    docker: Docker, app_image: str, pytestconfig: pytest.Config
) -> None:
    out = docker("run", "--rm", "--read-only", "--entrypoint", "python", app_image,
                 "-c", LOAD_ALL_EXTENSIONS)  # fmt: skip
    found = json.loads(out.stdout)
    assert found["failed"] == {}
    assert found["loaded"] > 20  # lib-dynload's and the venv's: the walk found them
    report(
        pytestconfig,
        f"{app_image}: {found['loaded']} extension modules load; "
        f"not alone (their init imports a sibling): {found['other']}",
    )
