"""The helm the e2e suite runs (E2E_HELM): its major version, read once from
`helm version --short`, and the flag that rolls a failed upgrade back: `--atomic` in helm 3,
`--rollback-on-failure` in helm 4 (which renamed it; `--atomic` is deprecated there)."""

from __future__ import annotations

import functools
import re
import subprocess

ROLLBACK_FLAGS = {3: "--atomic", 4: "--rollback-on-failure"}
# `helm version --short`: "v3.19.0+g3d8990f", "v4.1.4+g05fa379".
VERSION = re.compile(r"v(\d+)\.\d+\.\d+\S*")


class HelmVersionError(ValueError):
    """A helm whose version cannot be read, or a major version the suite does not know."""


def rollback_flag_of(command: str, output: str) -> str:
    """The rollback flag for a helm that printed `output` to `version --short`."""
    first = output.strip().splitlines()[0].strip() if output.strip() else ""
    found = VERSION.fullmatch(first)
    major = int(found[1]) if found else None
    if major in ROLLBACK_FLAGS:
        return ROLLBACK_FLAGS[major]
    known = " or ".join(f"{m} ({flag})" for m, flag in ROLLBACK_FLAGS.items())
    said = repr(first) if first else "nothing"
    raise HelmVersionError(
        f"cannot use helm {command}: `helm version --short` said {said}; the e2e suite "
        f"knows helm {known}: set E2E_HELM to one of those"
    )


def version_output(command: str) -> str:
    try:
        done = subprocess.run(
            [command, "version", "--short"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    return done.stdout if done.returncode == 0 else done.stdout + done.stderr


@functools.cache
def rollback_flag(command: str) -> str:
    """The flag for E2E_HELM, its version read once per process."""
    return rollback_flag_of(command, version_output(command))
