#!/usr/bin/env bash
# One-command install of GoeCTP Explorer: the Python package with the explorer and test extras, the offline
# 3Dmol.js viewer script (from the npm registry, served locally by the explorer), and headless Chromium for the
# end-to-end browser tests when running as root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")"
python -m pip install --quiet -e ".[dev]"
if command -v npm >/dev/null 2>&1; then
  mkdir -p explorer/static/vendor
  npm install --silent --no-audit --no-fund --prefix explorer/static/vendor 3dmol@2.5.5 >/dev/null
else
  echo "npm not found: the 3D viewer needs 3Dmol.js; install Node.js/npm and re-run ./install.sh" >&2
fi
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "could not install chromium: browser tests will be skipped" >&2
  else
    echo "chromium not found (needs root/apt): the browser tests will be skipped" >&2
  fi
fi
echo "GoeCTP Explorer installed. Run the explorer with: python explorer/app.py --show   (serves on 127.0.0.1 only)"
