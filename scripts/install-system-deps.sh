#!/usr/bin/env bash
# Debian packages that PySide6's wheels load at run time but do not ship: Qt widgets (offscreen and
# xcb), OpenGL/EGL, fonts, and QtWebEngine's Chromium (NSS, ALSA, X extensions). A fresh machine
# lacks them, and a missing one shows up only as an ImportError deep inside a test run, so the
# Makefile runs this before creating the environment. Installs only what is missing; needs root
# (as CI and our machines run) or prints the command to run.
set -euo pipefail

PACKAGES=(
  libgl1 libegl1 libopengl0 libglib2.0-0 libfontconfig1 libfreetype6 libdbus-1-3
  libxkbcommon0 libxkbcommon-x11-0 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0
  libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1
  libxcomposite1 libxdamage1 libxrandr2 libxtst6 libxshmfence1 libxkbfile1 libgbm1
  libnss3 libnspr4 libasound2 fonts-dejavu-core
)

command -v dpkg-query >/dev/null 2>&1 || { echo "system deps: not a Debian system, skipping"; exit 0; }

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "system deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "system deps: not root; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
