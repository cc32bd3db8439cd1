# The algoperf image: `algoperf run` in a Python environment that is exactly a lockfile.
#
# Build it with `algoperf docker build --variant cpu|jax-cuda|pytorch-cuda` (docs/containers.md),
# which stages the build context: the variant's lockfile, a wheelhouse whose every wheel matched
# the lockfile's sha256 on the host, and the project's own wheel. Nothing is fetched during the
# build (it runs with network "none"): pip installs with --no-index --require-hashes from the
# staged wheels only. The legacy builder is enough: no BuildKit feature is used.
#
# BASE_IMAGE is a public image pinned by digest; `--base-image` overrides it, e.g. with the Debian
# image `algoperf docker base` builds from a Debian mirror where no registry is reachable. Any
# base with CPython 3.11 and its venv module on glibc >= 2.28 fits the lockfiles.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# Stage 1: the locked third-party packages in the venv /opt/algoperf, which gets no pip of its
# own; pip runs from a throwaway venv. Byte code is compiled here (checked-hash, so it stays
# tied to its source) because the running image's file system is read-only; a few packages ship
# modules for newer Pythons that do not compile, hence `|| true` (they are never imported).
FROM ${BASE_IMAGE} AS deps
ENV PYTHONDONTWRITEBYTECODE=1
COPY lock/requirements.txt /build/requirements.txt
COPY wheels/ /build/wheels/
RUN python3 -m venv /build/installer \
 && python3 -m venv --without-pip /opt/algoperf \
 && /build/installer/bin/python -m pip --python /opt/algoperf/bin/python install \
      --no-index --find-links /build/wheels --require-hashes --no-deps --only-binary :all: \
      --no-compile --no-cache-dir --disable-pip-version-check --quiet \
      -r /build/requirements.txt \
 && { /opt/algoperf/bin/python -m compileall -f -qq -j 0 --invalidation-mode checked-hash \
      /opt/algoperf/lib || true; }

# Stage 2: the project itself, apart, so that a change to its source rebuilds only this.
FROM deps AS project
COPY project/ /build/project/
RUN /build/installer/bin/python -m pip install --target /opt/algoperf-project \
      --no-index --find-links /build/project --require-hashes --no-deps --only-binary :all: \
      --no-compile --no-cache-dir --disable-pip-version-check --quiet \
      -r /build/project/requirements.txt \
 && /opt/algoperf/bin/python -m compileall -f -q -j 0 --invalidation-mode checked-hash \
      /opt/algoperf-project

# The image: the base, the two environments, an unprivileged user. No wheelhouse, no pip.
FROM ${BASE_IMAGE}
ARG VARIANT=cpu
ARG USER_UID=1000
COPY --from=deps /opt/algoperf /opt/algoperf
COPY --from=project /opt/algoperf-project /opt/algoperf-project
RUN useradd --uid ${USER_UID} --user-group --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin algoperf \
 && mkdir -p /data /submission /experiments
ENV PATH=/opt/algoperf/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONPATH=/opt/algoperf-project \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    ALGOPERF_VARIANT=${VARIANT} \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER algoperf
WORKDIR /tmp
ENTRYPOINT ["/opt/algoperf/bin/python", "-m", "algoperf"]
CMD ["--help"]
