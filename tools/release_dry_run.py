"""What the release workflow would publish, checked without pushing or signing:

- the image built with `make image` carries the OCI labels of this version and revision;
- the chart packaged by `helm package` renders exactly as the chart folder does, with the
  default values and every values file in the chart's ci/ folder;
- the SBOM of the Python dependencies lists every pinned package;
- the workflows pass actionlint.

Usage: python -m tools.release_dry_run --image IMAGE --helm HELM --dist DIR
(run by `make release-dry-run`, which builds IMAGE and the SBOM first)."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from tools import REPO_ROOT
from tools.release import PLACES

CHART = REPO_ROOT / "deploy/helm/fastapi-app"
KUBE_VERSION = "1.34.0"


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr.strip()}")
    return result.stdout


def check_image_labels(docker: str, image: str, version: str, revision: str) -> dict[str, str]:
    labels: dict[str, str] = json.loads(
        run(docker, "image", "inspect", "-f", "{{json .Config.Labels}}", image)
    )
    expected = {
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
    }
    wrong = {key: labels.get(key) for key, value in expected.items() if labels.get(key) != value}
    if wrong:
        raise SystemExit(f"{image}: labels {wrong}, expected {expected}")
    return labels


def check_packaged_chart(helm: str, dist: Path, version: str) -> Path:
    """helm package, then the .tgz and the folder render the same for every values set."""
    run(helm, "package", str(CHART), "--destination", str(dist))
    package = dist / f"fastapi-app-{version}.tgz"
    if not package.exists():
        raise SystemExit(f"helm package wrote no {package.name}")
    for values in [None, *sorted((CHART / "ci").glob("*.yaml"))]:
        extra = ["-f", str(values)] if values else []
        common = ["--kube-version", KUBE_VERSION, *extra]
        from_folder = run(helm, "template", "api", str(CHART), *common)
        from_package = run(helm, "template", "api", str(package), *common)
        if from_folder != from_package:
            raise SystemExit(f"{package.name} renders differently from the chart folder ({values})")
    return package


def check_sbom(sbom: Path) -> int:
    components = {c["name"].lower() for c in json.loads(sbom.read_text()).get("components", [])}
    pinned = {
        line.split("==")[0].strip().lower()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    missing = pinned - components
    if missing:
        raise SystemExit(f"{sbom}: no component for {sorted(missing)}")
    return len(components)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.release_dry_run")
    parser.add_argument("--image", required=True)
    parser.add_argument("--helm", required=True)
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist")
    args = parser.parse_args(argv)
    version = PLACES[0].read(REPO_ROOT) or ""
    revision = run("git", "rev-parse", "--short", "HEAD").strip()
    check_image_labels(args.docker, args.image, version, revision)
    package = check_packaged_chart(args.helm, args.dist, version)
    components = check_sbom(args.dist / "sbom.cdx.json")
    actionlint = shutil.which("actionlint") or str(REPO_ROOT / ".venv/bin/actionlint")
    run(actionlint, *map(str, sorted((REPO_ROOT / ".github/workflows").glob("*.yml"))))
    print(
        f"release dry run of {version} ({revision}): image {args.image} labelled;"
        f" chart {package.name} renders as the folder; SBOM lists {components} packages;"
        " workflows pass actionlint. A v" + version + " tag would publish"
        f" ghcr.io/<owner>/fastapi-app:{version} (amd64+arm64, signed, provenance, SBOM)"
        f" and oci://ghcr.io/<owner>/charts/fastapi-app {version}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
