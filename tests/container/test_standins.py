"""The stand-in helpers' pure parts (no docker needed): apt mirror lookup, pip secrets."""

from __future__ import annotations

from pathlib import Path

from tests.container.standins import apt_mirror, pip_secrets

DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_sources(tmp_path: Path) -> None:
    path = tmp_path / "debian.sources"
    path.write_text(DEB822)
    assert apt_mirror.find_mirror("bookworm", [path]) == "http://mirror.invalid/debian"
    assert apt_mirror.find_mirror("trixie", [path]) is None


def test_one_line_sources_skip_security_and_options(tmp_path: Path) -> None:
    path = tmp_path / "sources.list"
    path.write_text(
        "# deb http://commented.invalid/debian bookworm main\n"
        "deb http://mirror.invalid/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/debian/ bookworm main contrib\n"
    )
    assert apt_mirror.find_mirror("bookworm", [path]) == "http://mirror.invalid/debian"


def test_disabled_stanza_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "x.sources"
    path.write_text("Enabled: no\n" + DEB822)
    assert apt_mirror.find_mirror("bookworm", [path]) is None


def test_pip_secrets_keep_only_what_reaches_a_network_index(tmp_path: Path) -> None:
    cert = tmp_path / "ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    config = {
        "index-url": "https://index.invalid/simple",
        "extra-index-url": "file:///srv/local/simple https://extra.invalid/simple",
        "find-links": "/srv/wheels",
        "constraint": "/etc/constraints.txt",
        "timeout": "60",
        "cert": str(cert),
    }
    text = pip_secrets.render(config, pip_secrets.ca_bundle(config))
    assert "index-url = https://index.invalid/simple" in text
    assert "extra-index-url = https://extra.invalid/simple" in text
    assert "file://" not in text and "/srv/wheels" not in text and "constraint" not in text
    assert f"cert = {pip_secrets.CERT_TARGET}" in text
    assert str(cert) not in text
