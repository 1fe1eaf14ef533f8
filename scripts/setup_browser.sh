#!/usr/bin/env bash
# Install Debian's chromium for the browser tests (tests/test_demo_browser.py), when it is missing.
# Idempotent and quiet: does nothing if chromium is already on PATH. Playwright drives this binary
# through executable_path, so no `playwright install` (which downloads from a CDN) is needed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup_browser: chromium is missing; run as root (or: sudo apt-get install -y chromium)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null || { echo "setup_browser: chromium still missing after apt-get" >&2; exit 1; }
echo "setup_browser: installed $(chromium --version 2>/dev/null || echo chromium)"
