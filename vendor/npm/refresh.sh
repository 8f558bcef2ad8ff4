#!/usr/bin/env bash
# Refresh the vendored JavaScript from npm (pinned in package-lock.json); nothing runs at install.
#   jsqr     -> api/static/faces/vendor/jsQR.js (+ licence; served at /faces/jsQR.js): the scanner's
#               QR decoder where the browser has no BarcodeDetector
#   axe-core -> tests/faces/vendor/axe.min.js (+ licence): the accessibility check of the browser tests
# To move to a newer version: edit package.json, run `npm install --package-lock-only`, then this.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --silent)
cp "$work/node_modules/jsqr/dist/jsQR.js" "$root/api/static/faces/vendor/jsQR.js"
cp "$work/node_modules/jsqr/LICENSE" "$root/api/static/faces/vendor/jsQR.LICENSE.txt"
cp "$work/node_modules/axe-core/axe.min.js" "$root/tests/faces/vendor/axe.min.js"
cat "$work/node_modules/axe-core/LICENSE" "$work/node_modules/axe-core/LICENSE-3RD-PARTY.txt" > "$root/tests/faces/vendor/axe.LICENSE.txt"
sha256sum "$root/api/static/faces/vendor/jsQR.js" "$root/tests/faces/vendor/axe.min.js"
