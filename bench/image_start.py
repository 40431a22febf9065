"""Images side by side: size, and seconds from `docker run` to the first 200 of /health/live.

Usage: python -m bench.image_start IMAGE [IMAGE ...] [--runs 7]
  e.g. the image of HEAD against the working tree's (docs/container.md):
  git show HEAD:Dockerfile > /tmp/Dockerfile.head
  DOCKER_BUILDKIT=1 docker build -f /tmp/Dockerfile.head -t fastapi-app:head . && make image
  python -m bench.image_start fastapi-app:head fastapi-app:local

Runs alternate between the images (one of each per round, order rotated), each container
read-only with a tmpfs /tmp as in compose, so both see the same machine load. Prints the
median, min and max per image.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import time
import uuid

POLL_INTERVAL_S = 0.01
START_TIMEOUT_S = 120.0


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def live(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def start_seconds(image: str) -> float:
    name = f"bench-image-start-{uuid.uuid4().hex[:8]}"
    port = free_port()
    started = time.monotonic()
    tmpfs = "/tmp"  # noqa: S108 - the container's, as compose mounts it
    docker("run", "-d", "--name", name, "--read-only", "--tmpfs", tmpfs,
           "-e", "WEB_CONCURRENCY=2", "-p", f"127.0.0.1:{port}:8000", image)  # fmt: skip
    try:
        while not live(port):
            if time.monotonic() - started > START_TIMEOUT_S:
                raise RuntimeError(f"{image}: no /health/live in {START_TIMEOUT_S:.0f} s")
            time.sleep(POLL_INTERVAL_S)
        return time.monotonic() - started
    finally:
        docker("rm", "-f", name)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.image_start", description=__doc__)
    parser.add_argument("images", nargs="+")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    images: list[str] = args.images
    times: dict[str, list[float]] = {image: [] for image in images}
    for round_ in range(args.runs):
        shift = round_ % len(images)
        for image in images[shift:] + images[:shift]:
            times[image].append(start_seconds(image))
    for image in images:
        size = json.loads(docker("image", "inspect", "-f", "{{json .Size}}", image))
        t = times[image]
        print(
            f"{image}: {size / 1e6:.1f} MB, start to /health/live median "
            f"{statistics.median(t):.2f} s (min {min(t):.2f}, max {max(t):.2f}, {len(t)} runs)"
        )


if __name__ == "__main__":
    main()
