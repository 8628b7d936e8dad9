#!/usr/bin/env bash
# Make sure `redis-server` is on PATH; install it with apt-get when it is not.
# Tests start their own redis-server on a free port, so only the binary matters.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
    echo "redis-server: $(redis-server --version)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "redis-server is missing and apt-get is not available; install Redis >= 6 by hand" >&2
    exit 1
fi

# Root (containers, CI) needs no sudo; everyone else does.
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "redis-server is missing; run as root or install sudo" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y redis-server
# The package starts a system service on 6379 on some images; tests never use it.
echo "redis-server: $(redis-server --version)"
