"""The throwaway PostgreSQL and Redis (tests/e2e/manifests/backing-services.yaml), with the
images E2E_POSTGRES_IMAGE and E2E_REDIS_IMAGE name instead of Docker Hub's when set (a
mirror, say), so no pod ever starts pulling the image the manifest names.

`python -m tests.e2e.backing` prints the manifest for `kubectl apply -f -` (make e2e-deps);
the prod-overlay test applies the same to the overlay's data namespace.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
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


def main() -> int:
    sys.stdout.write(render(images_from_env()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
