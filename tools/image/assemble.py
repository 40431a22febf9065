"""Assemble the final image's root filesystem: the interpreter, its standard library, the
venv, and every shared library these load; nothing else (no shell, no package manager).

Usage (the Dockerfile's assemble stage, as root, with the base image's python3):
    python3 tools/image/assemble.py --venv /opt/venv --out /rootfs

What is copied is found here, not listed by hand: the interpreter behind the venv's
`python` link, sysconfig's stdlib directory (less the parts no service needs: DROP_STDLIB),
and whatever `ldd` says the interpreter, lib-dynload/*.so and the venv's *.so load, with
the dynamic loader. Works on both layouts: /usr/local (the official python image, its own
libpython) and /usr (Debian's python3). Each path keeps its place, and every symlink met on
the way (/lib -> usr/lib, python3 -> python3.11) is recreated.
The tree is then checked from inside (chroot): the loader lists every ELF file's libraries
and the build fails on any "not found". The Debian packages the copied files come from are
recorded for SBOM scanners (var/lib/dpkg/status.d/, as distroless images do) and in
usr/share/doc/fastapi-app/sbom-os.txt.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import ssl
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

Ignore = Callable[[str, list[str]], set[str]]

# Standard library parts no service imports (test suites, GUIs, installers, 2to3, docs).
DROP_STDLIB = {
    "test", "idlelib", "tkinter", "turtledemo", "turtle.py", "ensurepip", "lib2to3",
    "pydoc_data", "site-packages", "dist-packages", "__phello__",
}  # fmt: skip
# lib-dynload modules of the parts above, CPython's own test modules, and those for terminals
# (readline, curses) and legacy stores (dbm, gdbm, nis): with them the libraries they load
# (readline, ncurses, Berkeley DB, libnsl with Kerberos): 4.5 MB on the stand-in base.
DROP_DYNLOAD = re.compile(
    r"^((_test|_xx|xx|_ctypes_test).*|(_tkinter|readline|_curses|_curses_panel|_dbm|_gdbm|nis)\..*)$"
)
# Loaded with dlopen, so ldd cannot see it: glibc needs libgcc_s for pthread_exit (a daemon
# thread that outlives interpreter shutdown) and thread cancellation.
DLOPENED = ("libgcc_s.so.1",)
DOC_DIR = "usr/share/doc/fastapi-app"
USERS = "root:x:0:0:root:/root:/nonexistent\nappuser:x:10001:10001::/nonexistent:/nonexistent\n"
GROUP = "root:x:0:\nappuser:x:10001:\n"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"


class Tree:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.origins: set[str] = set()  # source paths as named, links included (for dpkg -S)

    def copy(self, src: str) -> None:
        """Copy src to the same path under out, recreating each symlink on its way."""
        self.origins.add(src)
        parts = Path(src).parts[1:]
        current = Path("/")
        for index, part in enumerate(parts):
            current = current / part
            self.origins.add(str(current))
            dest = self.out / current.relative_to("/")
            if current.is_symlink():
                target = os.readlink(current)
                if not dest.is_symlink():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.symlink_to(target)
                resolved = os.path.normpath(
                    os.path.join(current.parent, target, *parts[index + 1 :])
                )
                self.copy(resolved)
                return
        dest = self.out / current.relative_to("/")
        if current.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(current, dest)

    def copy_tree(self, src: str, ignore: Ignore | None = None) -> None:
        self.copy(str(Path(src).parent))
        shutil.copytree(src, self.out / src.lstrip("/"), symlinks=True, ignore=ignore)
        self.origins.add(src)


def stdlib_ignore(stdlib: str) -> Ignore:
    def ignore(directory: str, names: list[str]) -> set[str]:
        dropped = {n for n in names if n.endswith((".opt-1.pyc", ".opt-2.pyc", ".a"))}
        if directory == stdlib:
            dropped |= {n for n in names if n in DROP_STDLIB or n.startswith("config-")}
        if os.path.basename(directory) == "lib-dynload":
            dropped |= {n for n in names if DROP_DYNLOAD.match(n)}
        return dropped

    return ignore


def elf_files(root: Path) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    found.append(path)
    return sorted(found)


LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def libraries(files: list[Path]) -> tuple[set[str], list[str]]:
    """The absolute paths ldd resolves for files (the loader included), and 'not found's."""
    paths: set[str] = set()
    missing: list[str] = []
    for path in files:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
        if "not a dynamic executable" in out.stdout + out.stderr:
            continue
        for line in out.stdout.splitlines():
            if "not found" in line:
                missing.append(f"{path}: {line.strip()}")
            match = LDD_PATH.search(line)
            if match:
                paths.add(match.group(1))
    return paths, missing


def dlopened() -> set[str]:
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    found = set()
    for name in DLOPENED:
        match = re.search(rf"^\s*{re.escape(name)} \([^)]*\) => (\S+)$", cache, re.MULTILINE)
        if match:
            found.add(match.group(1))
    return found


def check_inside(out: Path, loader: str) -> None:
    """Every ELF file under out, its libraries resolved by out's own loader and ld.so.cache."""
    failures = []
    for path in elf_files(out):
        inside = "/" + str(path.relative_to(out))
        done = subprocess.run(
            ["chroot", str(out), loader, "--list", inside], capture_output=True, text=True
        )
        text = done.stdout + done.stderr
        if "not found" in text or (done.returncode != 0 and "statically linked" not in text):
            failures.append(f"{inside}: {text.strip()}")
    if failures:
        sys.exit("libraries missing in the assembled tree:\n" + "\n".join(failures))


def record_packages(tree: Tree, stdlib: str) -> None:
    """status.d stanzas and a plain list of the Debian packages the tree's files come from."""
    copied_stdlib = tree.out / stdlib.lstrip("/")
    stdlib_entries = [*copied_stdlib.iterdir(), *(copied_stdlib / "lib-dynload").iterdir()]
    queried = sorted(p for p in tree.origins if not os.path.isdir(p))
    queried += sorted("/" + str(p.relative_to(tree.out)) for p in stdlib_entries)
    done = subprocess.run(["dpkg-query", "-S", *queried], capture_output=True, text=True)
    packages: set[str] = set()
    owned: set[str] = set()
    for line in done.stdout.splitlines():
        names, _, path = line.partition(": ")
        if line.startswith("diversion ") or not path:
            continue
        owned.add(os.path.realpath(path.strip()))
        packages.update(name.strip() for name in names.split(","))
    # Not from a package: the official image's interpreter, built from source under /usr/local.
    unowned = sorted(
        {os.path.realpath(p) for p in queried if not p.startswith(("/opt/", "/etc/"))}
        - owned
        - {os.path.realpath(p) for p in queried if os.path.isdir(p)}
    )
    status_dir = tree.out / "var/lib/dpkg/status.d"
    status_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for package in sorted(packages):
        stanza = subprocess.run(
            ["dpkg-query", "-s", package], capture_output=True, text=True, check=True
        ).stdout
        name = package.split(":")[0]
        (status_dir / name).write_text(stanza)
        fields = dict(re.findall(r"^(Version|Architecture): (.*)$", stanza, re.MULTILINE))
        lines.append(f"{name} {fields.get('Version', '?')} {fields.get('Architecture', '?')} deb")
        copyright_file = Path("/usr/share/doc") / name / "copyright"
        if copyright_file.is_file():
            tree.copy(str(copyright_file))
    version = platform.python_version()
    lines += [f"python {version} - source:{path}" for path in unowned]
    doc = tree.out / DOC_DIR
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "sbom-os.txt").write_text(
        "# name version architecture kind: the image's files outside /opt/venv (its Python"
        " packages: the release SBOM) and /app\n" + "\n".join(lines) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    tree = Tree(out)
    venv = Path(args.venv)

    tree.copy_tree(str(venv))
    for link in (venv / "bin").iterdir():  # python -> the base's python3 -> python3.X
        if link.is_symlink():
            tree.copy(str(link))
    interpreter = os.path.realpath(venv / "bin/python")
    stdlib = sysconfig.get_path("stdlib")
    tree.copy_tree(stdlib, ignore=stdlib_ignore(stdlib))

    elves = [Path(interpreter), *elf_files(out / stdlib.lstrip("/")), *elf_files(out / "opt")]
    needed, missing = libraries(elves)
    if missing:
        sys.exit("ldd in the builder:\n" + "\n".join(missing))
    for path in sorted(needed | dlopened()):
        tree.copy(path)
    loaders = [p for p in needed if re.search(r"/ld-linux[^/]*\.so", p)]
    if len(loaders) != 1:
        sys.exit(f"expected one dynamic loader in ldd's output, got {loaders}")

    # The loader's search configuration, and a cache for this tree only (libpython under
    # /usr/local/lib is found through it on the official image).
    for conf in [Path("/etc/ld.so.conf"), *sorted(Path("/etc/ld.so.conf.d").glob("*.conf"))]:
        if conf.is_file():
            tree.copy(str(conf))
    subprocess.run(["ldconfig", "-r", str(out)], check=True)

    # CA certificates where OpenSSL looks by default (the Debian bundle; no hashed dir).
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    if os.path.isfile(bundle):
        tree.copy(bundle)
        cafile = ssl.get_default_verify_paths().openssl_cafile
        link = out / cafile.lstrip("/")
        if cafile != bundle and not os.path.lexists(link):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(bundle)

    # Which distribution the libraries come from, for scanners matching them to advisories.
    if os.path.lexists("/etc/os-release"):
        tree.copy("/etc/os-release")
    etc = out / "etc"
    (etc / "passwd").write_text(USERS)
    (etc / "group").write_text(GROUP)
    (etc / "nsswitch.conf").write_text(NSSWITCH)
    (out / "tmp").mkdir(exist_ok=True)
    (out / "tmp").chmod(0o1777)

    check_inside(out, loaders[0])
    record_packages(tree, stdlib)
    for entry in out.rglob("*"):  # nothing runs with another user's rights
        mode = entry.lstat().st_mode
        if not entry.is_symlink() and mode & (stat.S_ISUID | stat.S_ISGID):
            entry.chmod(mode & ~(stat.S_ISUID | stat.S_ISGID))


if __name__ == "__main__":
    main()
