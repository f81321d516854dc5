#!/usr/bin/env bash
# Installs Debian's Chromium for the console's browser tests; does nothing if it is there.
# The tests drive /usr/bin/chromium headless; no browser is ever downloaded by Playwright.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
    exit 0
fi

# Root in CI containers; sudo on a workstation.
as_root=()
if [[ "$(id -u)" != "0" ]]; then
    as_root=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update
"${as_root[@]}" apt-get install -y --no-install-recommends chromium fonts-dejavu-core
