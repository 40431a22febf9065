"""The image build installs hashed requirements only (issue 25, item 7): the Dockerfile's
builder stage, run on a requirements.txt without hashes or with a wrong one, fails at the
pip step; the same stage with the real hashed line gets past it. Only the builder stage is
built (--target builder), from a small context: the real Dockerfile and a one-line file."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.container.conftest import BaseImages, pip_secret_args
from tests.container.dockerutil import Docker, run
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.container

MISSING = "Hashes are required in --require-hashes mode"
MISMATCH = "THESE PACKAGES DO NOT MATCH THE HASHES"


def real_line(name: str) -> str:
    """The logical line of requirements.txt for NAME, continuations included."""
    text = (REPO_ROOT / "requirements.txt").read_text()
    hashes = r"(?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+"
    found = re.search(rf"^{name}==\S+ \\\n{hashes}", text, re.M)
    assert found, f"{name} has no hashed line in requirements.txt"
    return found.group(0)


def build_builder(
    docker: Docker, base: str, requirements: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(REPO_ROOT / "Dockerfile", context / "Dockerfile")
    (context / "requirements.txt").write_text(requirements)
    return run(
        [
            docker.cli,
            "build",
            *pip_secret_args(tmp_path / "secrets"),
            "--progress=plain",
            "--target",
            "builder",
            "--build-arg",
            f"BASE_IMAGE={base}",
            str(context),
        ],
        env={"DOCKER_BUILDKIT": "1"},
        timeout_s=600,
        check=False,
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [("no hash", MISSING), ("wrong hash", MISMATCH)],
)
def test_the_build_refuses_requirements_without_their_hashes(
    case: str, expected: str, docker: Docker, base_images: BaseImages, tmp_path: Path
) -> None:
    line = real_line("idna")
    if case == "no hash":
        requirements = line.split(" \\")[0] + "\n"
    else:  # the hashes of another package: a file that is not the one pinned
        other = re.findall(r"sha256:[0-9a-f]{64}", real_line("anyio"))
        requirements = line.split(" \\")[0] + "".join(f" \\\n    --hash={h}" for h in other) + "\n"
    proc = build_builder(docker, base_images.python, requirements, tmp_path)
    assert proc.returncode != 0
    assert expected in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]


def test_the_real_hashed_line_passes_the_pip_step(
    docker: Docker, base_images: BaseImages, tmp_path: Path
) -> None:
    """The control: the same build with idna's real line installs it, and fails only later,
    at the import check, because the rest of the app's packages are not there."""
    proc = build_builder(docker, base_images.python, real_line("idna"), tmp_path)
    output = proc.stdout + proc.stderr
    assert MISSING not in output and MISMATCH not in output, output[-3000:]
    assert "Successfully installed idna" in output, output[-3000:]
    assert proc.returncode != 0 and "ModuleNotFoundError" in output, output[-3000:]
