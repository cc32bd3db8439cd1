"""The connection to a Docker engine, and image look-ups that fail with one clear line."""

from __future__ import annotations

import os

import docker
from docker.models.images import Image

from algoperf.errors import UserError

START_HINT = ("start one: `sudo dockerd &` (Debian: `sudo apt-get install docker.io` first), or "
              "`sudo systemctl start docker`; in this repository `.ci/docker-up` does both")


def connect(timeout: int = 600) -> docker.DockerClient:
    """A client of the engine at DOCKER_HOST (default: the local socket) that answered a ping."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as e:
        reason = "permission denied" if "Permission denied" in str(e) else "no answer"
        raise UserError(f"no Docker engine at {where} ({reason}); {START_HINT}") from None
    return client


def get_image(client: docker.DockerClient, ref: str) -> Image:
    """The local image ``ref`` (name:tag or id); nothing is pulled."""
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise UserError(f"image {ref!r} is not on this engine; build it with "
                        "`algoperf docker build --variant cpu` (see `docker images`)") from None
    except docker.errors.APIError as e:
        raise UserError(f"cannot look up image {ref!r}: {e.explanation or e}") from None


def find_labelled(client: docker.DockerClient, top_step: str, **labels: str) -> Image | None:
    """The newest local image carrying all ``labels`` (``org.algoperf.``-prefixed keys) whose
    last build step contains ``top_step``. Images built FROM another inherit its labels; the
    top step tells the image that was labelled apart from those derived from it."""
    filters = {"label": [f"org.algoperf.{k.replace('_', '-')}={v}" for k, v in labels.items()]}
    images = sorted(client.images.list(filters=filters), key=lambda i: i.attrs.get("Created", ""),
                    reverse=True)
    def top(image: Image) -> str:
        last = image.history()[0]
        return f"{last.get('CreatedBy') or ''} {last.get('Comment') or ''}"

    return next((i for i in images if top_step in top(i)), None)
