"""algoperf.containers: pinned images and sandboxed runs (docs/containers.md).

- `variants`, `lockfiles`: image variants from pyproject.toml and their hash-locked lockfiles
  (`algoperf env lock`).
- `engine`: the connection to a Docker engine, with one clear line when there is none.
- `base`: a minimal Debian base image from a Debian mirror (`algoperf docker base`).
- `wheelhouse`, `build`: the wheels a lockfile names, checked against its hashes, and the image
  built from them with no network (`algoperf docker build`).
- `verify`: an image's installed files against the lockfile (`algoperf docker verify-image`).
- `sandbox`, `docker_run`: the sandbox's container settings and the orchestration of
  `algoperf docker run`.
"""
