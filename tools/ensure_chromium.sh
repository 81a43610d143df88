#!/bin/sh
# Make sure Debian's Chromium is at /usr/bin/chromium (the browser tests use it; Playwright
# downloads no browser). Installs it with apt-get when run as root; otherwise stops with one line
# saying how. Usage: sh tools/ensure_chromium.sh [path]   (default /usr/bin/chromium)
CHROMIUM="${1:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: $CHROMIUM is missing; installing Debian's chromium with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null && [ -x "$CHROMIUM" ]; then
    exit 0
  fi
  echo "ensure_chromium: apt-get could not install chromium; install it by hand (apt-get install chromium), then rerun" >&2
  exit 1
fi
echo "ensure_chromium: $CHROMIUM is missing; install it with: sudo apt-get install --no-install-recommends chromium" >&2
exit 1
