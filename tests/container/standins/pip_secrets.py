# Usage: python tests/container/standins/pip_secrets.py OUT_DIR   (prints docker --secret args)
"""Hand this machine's pip network settings to `docker build` as BuildKit secrets.

pip inside the image build has to reach the package index the same way pip on the host
does (index URL, proxy, and on machines behind a TLS-intercepting proxy, the host's CA
bundle). Those settings come from `pip config list` (config files and PIP_* variables) at
build time; they are written to OUT_DIR/pip.conf and mounted only into the RUN step that
installs the dependencies (`--mount=type=secret`), so no layer of the image keeps them.
Options that point at local files (find-links folders, file:// indexes, constraints) cannot
be reached from inside the build and are left out. Prints nothing when there is nothing
to pass, so a plain machine builds exactly as a user's would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# pip options that decide how pip reaches an index; everything else stays on the host.
URL_OPTIONS = {"index-url", "extra-index-url", "find-links"}
PLAIN_OPTIONS = {"trusted-host", "timeout", "retries", "proxy"}
ALIASES = {"default-timeout": "timeout"}
CERT_TARGET = "/run/secrets/pip_cert"


def pip_config() -> dict[str, str]:
    """`pip config list` as {option: value}; PIP_* variables override config files."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        # No pip for this Python: the PIP_* variables are all there is to read.
        out = "\n".join(
            f":env:.{name[4:].lower().replace('_', '-')}={value}"
            for name, value in os.environ.items()
            if name.startswith("PIP_")
        )
    files: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        section, _, option = key.rpartition(".")
        option = ALIASES.get(option, option)
        value = value.strip().strip("'\"")
        if section == ":env:":
            env[option] = value
        elif section in {"global", "install", "download"}:
            files[option] = value
    return {**files, **env}


def network_values(option: str, value: str) -> list[str]:
    values = value.split()
    if option in URL_OPTIONS:
        return [v for v in values if v.startswith(("http://", "https://"))]
    return values


def ca_bundle(config: dict[str, str]) -> Path | None:
    for candidate in (
        config.get("cert"),
        os.environ.get("PIP_CERT"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        os.environ.get("SSL_CERT_FILE"),
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def render(config: dict[str, str], cert: Path | None) -> str:
    lines = ["[global]"]
    for option in sorted(URL_OPTIONS | PLAIN_OPTIONS):
        values = network_values(option, config.get(option, ""))
        if values:
            lines.append(f"{option} = {' '.join(values)}")
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if proxy and "proxy" not in config:
        lines.append(f"proxy = {proxy}")
    if cert is not None:
        lines.append(f"cert = {CERT_TARGET}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: pip_secrets.py OUT_DIR", file=sys.stderr)
        return 2
    out_dir = Path(argv[1])
    config = pip_config()
    cert = ca_bundle(config)
    text = render(config, cert)
    if text == "[global]\n":
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    conf = out_dir / "pip.conf"
    conf.write_text(text, encoding="utf-8")
    args = [f"--secret id=pip_conf,src={conf.resolve()}"]
    if cert is not None:
        args.append(f"--secret id=pip_cert,src={cert}")
    print(" ".join(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
