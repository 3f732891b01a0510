#!/usr/bin/env bash
# Install the Debian packages govledger needs beyond Python: Pango for
# WeasyPrint, fonts for the audit pack, poppler-utils for pdfsig/pdftoppm,
# and a C compiler with OpenSSL's headers for verify's compiled fast path
# (ledger/_rowcheck.c), plus the Python headers if PYTHON has none.
set -euo pipefail
packages=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core poppler-utils gcc libssl-dev)
python=${PYTHON:-python3}
include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if [ ! -f "$include/Python.h" ]; then
  packages+=("$("$python" -c 'import sys; print("python%d.%d-dev" % sys.version_info[:2])')")
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
    || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
