#!/usr/bin/env bash
# Install Debian's chromium for the report's browser test (tests/test_report_browser.py),
# as root, when it is missing. Idempotent: apt runs only when no chromium is on PATH.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "tests/install_chromium.sh: chromium present"
    exit 0
fi
if [[ $(id -u) != 0 ]]; then
    echo "tests/install_chromium.sh: chromium missing; run as root (apt-get install chromium)" >&2
    exit 1
fi
echo "tests/install_chromium.sh: installing chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "tests/install_chromium.sh: done"
