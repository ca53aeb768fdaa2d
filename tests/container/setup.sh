#!/usr/bin/env bash
# What the container tests need and a CI machine may lack, set up once and cached between runs:
#   - podman with runc, and debootstrap (Debian packages);
#   - an OCI runtime wrapper: sandboxes without CAP_SYS_RESOURCE refuse runc's setrlimit, so the
#     wrapper drops process.rlimits from each bundle's config.json, then runs runc;
#   - a local Debian bookworm base image with Python 3.11 (no image can be pulled here): debootstrap
#     then podman import, about a minute the first time.
# Prints the runtime wrapper's path and the base image's name, which tests/container reads back.
set -euo pipefail
CACHE=${EMOTION_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/emotion-containers}
BASE_IMAGE=localhost/emotion-base:bookworm-slim
mkdir -p "$CACHE"

missing=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

RUNTIME="$CACHE/runc-without-rlimits"
cat > "$RUNTIME" <<'WRAPPER'
#!/bin/sh
# runc, minus the rlimits this sandbox refuses to set (see tests/container/setup.sh).
# `create` reads the bundle's config.json, `exec` a process.json: rlimits go from both.
specs=""
previous=""
for argument in "$@"; do
  case "$previous" in
    --bundle|-b) specs="$specs $argument/config.json" ;;
    --process|-p) specs="$specs $argument" ;;
  esac
  case "$argument" in
    --bundle=*) specs="$specs ${argument#--bundle=}/config.json" ;;
    --process=*) specs="$specs ${argument#--process=}" ;;
  esac
  previous="$argument"
done
for spec in $specs; do
  [ -f "$spec" ] || continue
  python3 - "$spec" <<'PY'
import json, sys
with open(sys.argv[1]) as handle:
    spec = json.load(handle)
spec.pop("rlimits", None)
spec.get("process", {}).pop("rlimits", None)
with open(sys.argv[1], "w") as handle:
    json.dump(spec, handle)
PY
done
exec runc "$@"
WRAPPER
chmod +x "$RUNTIME"

if ! podman image exists "$BASE_IMAGE"; then
  rootfs="$CACHE/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" \
    http://deb.debian.org/debian >/dev/null
  # As slim as python:3.11-slim-bookworm: no package caches or lists, no documentation or translations.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
fi
echo "runtime=$RUNTIME"
echo "base_image=$BASE_IMAGE"
