"""The throwaway PostgreSQL and Redis (tests/e2e/manifests/backing-services.yaml), with the
images E2E_POSTGRES_IMAGE and E2E_REDIS_IMAGE name instead of Docker Hub's when set (a
mirror, say), so no pod ever starts pulling the image the manifest names.

`python -m tests.e2e.backing` prints the manifest for `kubectl apply -f -` (make e2e-deps);
the prod-overlay test applies the same to the overlay's data namespace.

`python -m tests.e2e.backing load` (make e2e-deps, before the apply) puts those images on
every kind node the way the app's image gets there: each pulled once on this machine (for
the nodes' platform, unless Docker has it already), saved for that platform only and loaded
with `kind load image-archive`; the manifest's `imagePullPolicy: IfNotPresent` then starts
them without a registry. `--platform` matters with Docker's containerd image store (the
default from Docker 29): without it `docker save` exports the image's whole multi-platform
index, whose other platforms' layers were never pulled, and the import on the nodes fails
(`content digest ... not found`, kind's known issue). It needs Docker 28 or later.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.settings import BACKING_MANIFEST

# Deployment (and its container) -> the variable naming another image for it.
IMAGE_VARIABLES = {"postgres": "E2E_POSTGRES_IMAGE", "redis": "E2E_REDIS_IMAGE"}


def images_from_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    chosen = {name: env.get(var, "").strip() for name, var in IMAGE_VARIABLES.items()}
    return {name: image for name, image in chosen.items() if image}


def render(images: Mapping[str, str], text: str | None = None) -> str:
    """The manifest with the container `name` of Deployment `name` running images[name]."""
    docs: list[dict[str, Any]] = [
        d for d in yaml.safe_load_all(text or BACKING_MANIFEST.read_text()) if d
    ]
    replaced: set[str] = set()
    for doc in docs:
        if doc.get("kind") != "Deployment":
            continue
        name = doc["metadata"]["name"]
        for container in doc["spec"]["template"]["spec"]["containers"]:
            if container["name"] == name and name in images:
                container["image"] = images[name]
                replaced.add(name)
    unknown = set(images) - replaced
    if unknown:
        raise ValueError(f"no Deployment/container named {sorted(unknown)} in the manifest")
    return yaml.safe_dump_all(docs, sort_keys=False)


def manifest_images(text: str) -> list[str]:
    """Every container image of the manifest's Deployments, in order, once each."""
    found: list[str] = []
    for doc in yaml.safe_load_all(text):
        if doc and doc.get("kind") == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if container["image"] not in found:
                    found.append(container["image"])
    return found


def load_commands(
    images: Sequence[str],
    platform: str,
    archive: Path,
    present: Callable[[str], bool],
    docker: str = "docker",
    kind: str = "kind",
    cluster: str = "fastapi-app-e2e",
) -> list[list[str]]:
    """Pull what Docker does not have (for `platform`), save all of it for `platform` only
    into one archive, load that into every node of `cluster`."""
    pulls = [[docker, "pull", "--platform", platform, i] for i in images if not present(i)]
    return [
        *pulls,
        [docker, "save", "--platform", platform, "-o", str(archive), *images],
        [kind, "load", "image-archive", str(archive), "--name", cluster],
    ]


def node_platform(docker: str) -> str:
    """The platform of the Docker daemon, which kind's nodes run on: linux/amd64, linux/arm64."""
    done = subprocess.run(
        [docker, "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    platform = done.stdout.strip()
    if done.returncode != 0 or "/" not in platform or " " in platform:
        raise SystemExit(
            f"cannot read the Docker daemon's platform ({done.stderr.strip() or platform!r}); "
            "set E2E_PLATFORM, e.g. linux/arm64"
        )
    return platform


def load(env: Mapping[str, str]) -> int:
    docker, kind = env.get("DOCKER") or "docker", env.get("KIND") or "kind"
    cluster = env.get("KIND_CLUSTER") or "fastapi-app-e2e"
    archive = Path(env.get("E2E_ARTIFACTS") or "var/e2e") / f"backing-images-{cluster}.tar"
    platform = env.get("E2E_PLATFORM") or node_platform(docker)
    images = manifest_images(render(images_from_env(env)))

    def present(image: str) -> bool:
        inspect = [docker, "image", "inspect", "--format", "{{.Id}}", image]
        return subprocess.run(inspect, capture_output=True, timeout=60, check=False).returncode == 0

    archive.parent.mkdir(parents=True, exist_ok=True)
    try:
        for command in load_commands(images, platform, archive, present, docker, kind, cluster):
            print("+ " + " ".join(command), flush=True)
            if subprocess.run(command, check=False).returncode != 0:
                hint = " (--platform needs Docker 28 or later)" if command[1] == "save" else ""
                print(f"backing images: `{' '.join(command[:3])}` failed{hint}", file=sys.stderr)
                return 1
    finally:
        archive.unlink(missing_ok=True)
    return 0


def main(argv: Sequence[str] = ()) -> int:
    if list(argv) == ["load"]:
        return load(os.environ)
    if argv:
        sys.stderr.write("Usage: python -m tests.e2e.backing [load]\n")
        return 2
    sys.stdout.write(render(images_from_env()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
