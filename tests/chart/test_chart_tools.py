"""The installers put helm v3, helm v4 and checkov where the tests and make look for them."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.chart.rendering import helm_binary
from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.chart

SCRIPTS = ["tools/install-helm.sh", "tools/install-checkov.sh", ".ci/steps/10-chart-tools.sh"]


@pytest.mark.parametrize(("name", "major"), [("helm", "v3."), ("helm4", "v4.")])
def test_helm_versions(name: str, major: str) -> None:
    proc = subprocess.run(
        [helm_binary(name), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert proc.stdout.startswith(major), proc.stdout


def test_installers_are_idempotent() -> None:
    """A second run finds everything in place and downloads nothing."""
    helm_binary("helm")
    helm_binary("helm4")
    require_tool("checkov", "bash tools/install-checkov.sh")
    for script in SCRIPTS[:2]:
        proc = subprocess.run(
            ["bash", script],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "already installed" in proc.stdout, proc.stdout


def test_scripts_pass_shellcheck() -> None:
    shellcheck = require_tool("shellcheck", "apt-get install shellcheck")
    proc = subprocess.run(
        [shellcheck, *SCRIPTS], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    assert proc.returncode == 0, proc.stdout


def test_scripts_name_no_host_or_machine_path() -> None:
    # Only helm's own: its release archives (off Linux x86-64) and its install page.
    helm_urls = {"https://get.helm.sh", "https://helm.sh/docs/intro/install/"}
    for script in SCRIPTS:
        text = (REPO_ROOT / script).read_text()
        urls = set(re.findall(r"\w+://[^\s\"'}),]+", text))
        assert urls <= (helm_urls if script == "tools/install-helm.sh" else set()), script
        assert "/opt/" not in text and "/root/" not in text, script
