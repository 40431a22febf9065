"""The suite's rollback flag follows E2E_HELM's major version: --atomic for helm 3,
--rollback-on-failure for helm 4; any other helm stops it, named. Stand-in binaries print
what the real ones print to `helm version --short`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helm_version import HelmVersionError, rollback_flag, rollback_flag_of


def stub_helm(path: Path, prints: str) -> Path:
    """A helm that prints `prints` to `version --short` and counts its calls."""
    path.write_text(
        f'#!/bin/sh\necho "$*" >> "{path}.calls"\n'
        f'[ "$*" = "version --short" ] && echo "{prints}"\nexit 0\n'
    )
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("name", "prints", "flag"),
    [
        ("helm", "v3.19.0+g3d8990f", "--atomic"),
        ("helm4", "v4.1.4+g05fa379", "--rollback-on-failure"),
    ],
)
def test_the_flag_follows_the_major_version_read_once(
    tmp_path: Path, name: str, prints: str, flag: str
) -> None:
    helm = stub_helm(tmp_path / name, prints)
    assert rollback_flag(str(helm)) == flag
    assert rollback_flag(str(helm)) == flag
    assert Path(f"{helm}.calls").read_text() == "version --short\n"  # asked once


@pytest.mark.parametrize(
    ("prints", "shown"),
    [
        ("v2.17.0+ga690bad", "'v2.17.0+ga690bad'"),
        ("v5.0.0", "'v5.0.0'"),
        ("Error: unknown flag: --short", "'Error: unknown flag: --short'"),
        ("", "nothing"),
    ],
)
def test_any_other_helm_is_named_with_what_it_said(prints: str, shown: str) -> None:
    with pytest.raises(HelmVersionError) as raised:
        rollback_flag_of("/opt/helm", prints)
    message = str(raised.value)
    assert message.startswith(f"cannot use helm /opt/helm: `helm version --short` said {shown}")
    assert "3 (--atomic) or 4 (--rollback-on-failure)" in message
