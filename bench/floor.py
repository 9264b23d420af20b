"""The floor for a no-op apply: the least any podman-py program must do to know a stack is converged.

It connects, lists the stack's containers (one label-filtered call, no per-container inspect) and
lists the images, then exits. bench/run.py times it as a whole process, interpreter start and
imports included, exactly as it times `podform apply`; the SPEC §7 ratio is measured against it.

    python bench/floor.py --url unix:///run/podman/podman.sock --stack NAME
"""

from __future__ import annotations

import argparse
import os

from podman import PodmanClient

STACK_LABEL = "io.podform.stack"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CONTAINER_HOST"), required=False)
    parser.add_argument("--stack", required=True, help="value of the io.podform.stack label")
    args = parser.parse_args()
    with PodmanClient(base_url=args.url) as client:
        containers = client.containers.list(
            all=True, sparse=True, filters={"label": f"{STACK_LABEL}={args.stack}"}
        )
        images = client.images.list()
    print(f"{len(containers)} containers, {len(images)} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
