#!/bin/sh
# The stand-in for python:3.11-slim-bookworm where Docker Hub is out of reach: Debian bookworm's
# own Python 3.11 in a minimal debootstrap, imported into podman once and reused.
#   ops/container/stand-in-base.sh [IMAGE]   (default localhost/venue-gateway-base:bookworm)
# The root file system is kept as a tarball under $XDG_CACHE_HOME (or ~/.cache), so a podman
# store that was reset imports it again in seconds instead of running debootstrap again.
set -eu
image="${1:-localhost/venue-gateway-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/venue-gateway"
tarball="$cache/bookworm-python3-minbase.tar"

if podman image exists "$image"; then
  exit 0
fi
if [ ! -s "$tarball" ]; then
  mkdir -p "$cache"
  root="$(mktemp -d "$cache/rootfs.XXXXXX")"
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap: bookworm minbase with python3 into $root (about a minute)"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "$mirror" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
fi
podman import --change 'CMD ["python3"]' "$tarball" "$image" >/dev/null
echo "imported $image"
