#!/usr/bin/env bash
# Make sure Debian's headless browser (`chromium`) and its WebDriver (`chromedriver`, package
# chromium-driver) are installed; apt-get them when they are not. The dashboard's browser tests
# (tests/dashboard/) drive this system browser with Selenium: nothing downloads a browser build.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "chromium: $(chromium --version 2>/dev/null || echo present)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium or chromedriver is missing and apt-get is not available;" \
        "install Chromium and its chromedriver by hand" >&2
    exit 1
fi

# Root (containers, CI) needs no sudo; everyone else does.
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "chromium is missing; run as root or install sudo" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium chromium-driver
echo "chromium: $(chromium --version 2>/dev/null || echo installed)"
