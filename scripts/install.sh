#!/usr/bin/env bash
# Install gen3d into ./.venv (Python >= 3.10). `--test` adds the test tools (and Debian's chromium).
# open3d's Linux wheel needs the system library libusb-1.0; on Debian/Ubuntu we install it if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
if [ "$(uname -s)" = "Linux" ] && ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null
  else
    echo "install.sh: open3d needs libusb-1.0 (install it with your package manager)" >&2
  fi
fi
# The browser tests (marker `browser`, tests/viewer) drive Debian's chromium: `--test` installs it if missing.
if [ -n "$extras" ] && [ "$(uname -s)" = "Linux" ] && ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "install.sh: the browser tests need chromium (install it with your package manager)" >&2
  fi
fi
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
log="$(mktemp)"
if ! .venv/bin/python -m pip install -q -e ".${extras}" >"$log" 2>&1; then
  grep -v "is ignored: it is neither" "$log" >&2; rm -f "$log"; exit 1
fi
rm -f "$log"
.venv/bin/python -c "import gen3d, open3d, torch; print('gen3d', gen3d.__version__, '| torch', torch.__version__, '| open3d', open3d.__version__)"
