#!/usr/bin/env bash
# Make sure a headless Chromium is there for the browser tests and the main job's screenshots.
#
#   bash scripts/ensure_chromium.sh
#
# Uses $COURSE_CHROMIUM or a chromium / chromium-browser / google-chrome on PATH when there is one.
# Otherwise, as root with apt-get (Debian, Ubuntu, CI), installs Debian's `chromium` and
# `chromium-driver`. Anywhere else it prints what to install and exits 0: the browser tests then
# skip, saying why (under CI they fail instead), and the main job builds the site without screenshots.
set -uo pipefail

have_chromium() {
  if [ -n "${COURSE_CHROMIUM:-}" ] && [ -x "${COURSE_CHROMIUM}" ]; then return 0; fi
  for c in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$c" >/dev/null 2>&1 && return 0
  done
  return 1
}

if have_chromium; then
  exit 0
fi

# shellcheck source=scripts/apt_install.sh
source "$(dirname "$0")/apt_install.sh"
apt_install chromium have_chromium 'chromium --version 2>/dev/null | head -1' "browser tests, site screenshots" \
  "the browser tests will skip and the site is built without screenshots" chromium chromium-driver

echo "ensure_chromium: WARNING: no Chromium found and cannot install it here (needs root and apt-get)." >&2
echo "  Install Chromium or Chrome (Debian/Ubuntu: sudo apt-get install chromium chromium-driver)," >&2
echo "  or set COURSE_CHROMIUM=/path/to/chrome. Until then the browser tests skip, saying why," >&2
echo "  and the main job builds the site without screenshots." >&2
exit 0
