#!/usr/bin/env bash
# System libraries the Python wheels need but do not ship.
# open3d (-cpu) links libusb-1.0; without it `import open3d` fails with
# "libusb-1.0.so.0: cannot open shared object file".
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian package libusb-1.0-0 (needed by open3d)"
    apt-get install -y -q libusb-1.0-0 >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q libusb-1.0-0 >/dev/null; }
else
    echo "open3d needs the system library libusb-1.0 (Debian/Ubuntu: sudo apt-get install libusb-1.0-0;" >&2
    echo "conda: conda install -c conda-forge libusb). Install it, then re-run." >&2
    exit 1
fi
