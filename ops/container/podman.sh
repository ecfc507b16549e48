#!/bin/sh
# podman as this project builds and runs its image on a machine like its CI's:
#   ops/container/podman.sh build [ARGS...]   build the image (ARGS e.g. -t venue-gateway:local)
#   ops/container/podman.sh run [ARGS...]     run a container
#   ops/container/podman.sh [COMMAND ARGS...] any other podman command, with the runtime below
# - runc: crun refuses the hybrid cgroup setup of such machines;
# - explicit ulimits on every build and run: the sandbox cannot raise the default limits;
# - build: Docker format (podman drops HEALTHCHECK from OCI images), the host network, and the
#   host's CA bundle mounted where pip looks, so pip reaches the package index through the
#   machine's TLS-inspecting proxy; PYTHON_IMAGE is the stand-in base (stand-in-base.sh) unless
#   set to another image, e.g. PYTHON_IMAGE=python:3.11-slim-bookworm.
set -eu
runtime="${PODMAN_RUNTIME:-runc}"
limits="--ulimit nofile=1024:1024 --ulimit nproc=4096:4096"
base="${PYTHON_IMAGE:-localhost/venue-gateway-base:bookworm}"
ca=/etc/ssl/certs/ca-certificates.crt
command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
  build)
    mounts=""
    [ -r "$ca" ] && mounts="-v $ca:$ca:ro"
    # shellcheck disable=SC2086  # word splitting of the option lists is intended
    exec podman --runtime "$runtime" build --format docker --network host $limits $mounts \
      --build-arg "PYTHON_IMAGE=$base" "$@"
    ;;
  run)
    # shellcheck disable=SC2086
    exec podman --runtime "$runtime" run $limits "$@"
    ;;
  *)
    exec podman --runtime "$runtime" "$command" "$@"
    ;;
esac
