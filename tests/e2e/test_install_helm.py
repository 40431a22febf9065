"""tools/install-helm.sh off Linux x86-64 (macOS, Linux arm64): the official release archive
of the platform, checked against the sha256 pinned for it, run for each platform against a
local download server (RELEASE_UNAME_S/M stand in for uname, HELM_DOWNLOAD_BASE for
get.helm.sh, HELM_ARCHIVE_SHA256 for the pinned digest where a stand-in archive is served)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import re
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import require_tool
from tools.testbed.support import REPO_ROOT, free_port

# (uname -s, uname -m) -> the platform of helm's archive names.
PLATFORMS = {
    ("Darwin", "arm64"): "darwin-arm64",
    ("Darwin", "x86_64"): "darwin-amd64",
    ("Linux", "aarch64"): "linux-arm64",
}
VERSIONS = ("v3.19.0", "v4.1.4")
# The sha256 published beside each archive (helm's GitHub release notes list them).
PUBLISHED = {
    "v3.19.0-darwin-arm64": "31513e1193da4eb4ae042eb5f98ef9aca7890cfa136f4707c8d4f70e2115bef6",
    "v3.19.0-darwin-amd64": "09a108c0abda42e45af172be65c49125354bf7cd178dbe10435e94540e49c7b9",
    "v3.19.0-linux-arm64": "440cf7add0aee27ebc93fada965523c1dc2e0ab340d4348da2215737fc0d76ad",
    "v4.1.4-darwin-arm64": "7c2eca678e8001fa863cdf8cbf6ac1b3799f9404a89eb55c08260ef5732e658d",
    "v4.1.4-darwin-amd64": "abf09c8503ad1d8ef76d3737a058c3456a998aae5f5966fce4bb3031aeb1654e",
    "v4.1.4-linux-arm64": "13d03672be289045d2ff00e4e345d61de1c6f21c1257a45955a30e8ae036d8f1",
}
# A stand-in helm: `version --short` as the real one prints it, v4 when installed as helm4
# (the installer runs it as helm.partial / helm4.partial, then as helm / helm4).
STANDIN = b"""#!/bin/sh
case "$(basename "$0")" in
  helm4*) echo "v4.1.4+g0000000" ;;
  *) echo "v3.19.0+g0000000" ;;
esac
"""


def archive(platform: str, binary: bytes = STANDIN) -> bytes:
    """A release archive as helm publishes it: <os>-<arch>/helm (and its LICENSE)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data, mode in ((f"{platform}/helm", binary, 0o755),
                                 (f"{platform}/LICENSE", b"Apache-2.0\n", 0o644)):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A download server laid out as get.helm.sh: (its URL, the directory it serves)."""
    root = tmp_path / "get.helm"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def publish(root: Path, platform: str, data: bytes) -> str:
    """Both versions' archives for the platform; their sha256."""
    for version in VERSIONS:
        (root / f"helm-{version}-{platform}.tar.gz").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def install(
    dest: Path, base: str, uname: tuple[str, str], sha256: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "RELEASE_UNAME"))}
    env |= {"HELM_DOWNLOAD_BASE": base, "RELEASE_UNAME_S": uname[0], "RELEASE_UNAME_M": uname[1]}
    if sha256:
        env["HELM_ARCHIVE_SHA256"] = sha256
    return subprocess.run(
        ["bash", "tools/install-helm.sh", str(dest)], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("uname", list(PLATFORMS), ids=list(PLATFORMS.values()))
def test_installs_both_helms_from_the_platforms_archive_and_then_finds_them(
    tmp_path: Path, server: tuple[str, Path], uname: tuple[str, str]
) -> None:
    base, root = server
    sha256 = publish(root, PLATFORMS[uname], archive(PLATFORMS[uname]))
    dest = tmp_path / "bin"
    done = install(dest, base, uname, sha256)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"helm v3.19.0 installed at {dest}/helm" in done.stdout, done.stdout
    assert f"helm4 v4.1.4 installed at {dest}/helm4" in done.stdout, done.stdout
    assert (dest / "helm").read_bytes() == STANDIN and os.access(dest / "helm", os.X_OK)
    assert not list(dest.glob("*.partial"))
    again = install(dest, f"http://127.0.0.1:{free_port()}", uname)  # nothing listens there
    assert again.returncode == 0, again.stdout + again.stderr
    assert "helm v3.19.0 already installed" in again.stdout
    assert "helm4 v4.1.4 already installed" in again.stdout


@pytest.mark.parametrize("uname", list(PLATFORMS), ids=list(PLATFORMS.values()))
def test_an_archive_without_the_published_sha256_is_refused(
    tmp_path: Path, server: tuple[str, Path], uname: tuple[str, str]
) -> None:
    """No digest given: the pinned one of the platform is what the archive must have."""
    base, root = server
    platform = PLATFORMS[uname]
    publish(root, platform, archive(platform))
    done = install(tmp_path / "bin", base, uname)
    assert done.returncode == 1, done.stdout + done.stderr
    expected = f"helm-v3.19.0-{platform}.tar.gz from {base} does not have the sha256"
    assert expected in done.stderr and PUBLISHED[f"v3.19.0-{platform}"] in done.stderr
    assert not (tmp_path / "bin" / "helm").exists()


def test_every_pinned_digest_is_the_published_one() -> None:
    script = (REPO_ROOT / "tools/install-helm.sh").read_text()
    for key, digest in PUBLISHED.items():
        assert f"    {key}) echo {digest} ;;" in script, key


def test_a_tampered_archive_installs_nothing(tmp_path: Path, server: tuple[str, Path]) -> None:
    base, root = server
    good = archive("darwin-arm64")
    publish(root, "darwin-arm64", archive("darwin-arm64", STANDIN + b"# tampered\n"))
    done = install(tmp_path / "bin", base, ("Darwin", "arm64"), hashlib.sha256(good).hexdigest())
    assert done.returncode == 1 and "does not have the sha256" in done.stderr, done.stderr
    assert not (tmp_path / "bin" / "helm").exists()


def test_an_archive_of_another_version_is_refused(tmp_path: Path, server: tuple[str, Path]) -> None:
    other = archive("linux-arm64", b"#!/bin/sh\necho v3.18.6+g0000000\n")
    sha256 = publish(server[1], "linux-arm64", other)
    done = install(tmp_path / "bin", server[0], ("Linux", "aarch64"), sha256)
    assert done.returncode == 1
    assert "got helm v3.18.6 for linux-arm64, expected v3.19.0" in done.stderr, done.stderr
    assert not list((tmp_path / "bin").iterdir())


@pytest.mark.parametrize(
    ("uname", "says"),
    [
        (("FreeBSD", "amd64"), "no sha256 of helm v3.19.0 for freebsd-amd64 is pinned here"),
        (("Linux", "s390x"), "no helm release for s390x"),
    ],
)
def test_a_platform_without_a_pinned_archive_says_what_to_install(
    tmp_path: Path, server: tuple[str, Path], uname: tuple[str, str], says: str
) -> None:
    done = install(tmp_path / "bin", server[0], uname)
    assert done.returncode == 1, done.stdout + done.stderr
    assert says in done.stderr, done.stderr
    assert "install helm v3.19.0 (and v4.1.4 as helm4)" in done.stderr
    assert "https://helm.sh/docs/intro/install/" in done.stderr
    assert not (tmp_path / "bin" / "helm").exists()


def test_an_unpublished_archive_is_named_with_the_http_status(
    tmp_path: Path, server: tuple[str, Path]
) -> None:
    done = install(tmp_path / "bin", server[0], ("Darwin", "arm64"), "0" * 64)
    assert done.returncode == 1
    assert f"{server[0]}/helm-v3.19.0-darwin-arm64.tar.gz answered HTTP 404" in done.stderr


# -- make: the targets that run helm install it first ---------------------------------------

HELM_TARGETS = ["drill-chart", "drill-chart-control", "chart-lint", "chart-template", "e2e-prereqs"]


def make_dry_run(target: str, tools_bin: Path) -> str:
    make = require_tool("make", "apt-get install make")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS", "E2E_"))}
    done = subprocess.run(
        [make, "--no-print-directory", "-n", target, f"TOOLS_BIN={tools_bin}"], cwd=REPO_ROOT,
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("target", HELM_TARGETS)
def test_a_target_that_runs_helm_installs_it_when_missing(tmp_path: Path, target: str) -> None:
    """As on a fresh clone: no helm in TOOLS_BIN, so make runs the installer before helm."""
    tools_bin = tmp_path / "bin"
    out = make_dry_run(target, tools_bin)
    lines = out.splitlines()
    install = lines.index(f"bash tools/install-helm.sh {tools_bin}")
    uses = [i for i, line in enumerate(lines) if re.search(rf"{tools_bin}/helm\b(?!4)", line)
            and not line.startswith(("bash tools/install-helm.sh", "touch "))]  # fmt: skip
    assert uses and install < uses[0], out
    tools_bin.mkdir()
    for name in ("helm", "helm4"):  # installed: newer than the installer
        (tools_bin / name).write_bytes(STANDIN)
    assert "install-helm.sh" not in make_dry_run(target, tools_bin)
