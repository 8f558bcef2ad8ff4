#!/usr/bin/env bash
# Regenerate the client after an API change: the served OpenAPI document is written to
# openapi.json (through the test that compares them), then the TypeScript types from it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CHONGJUN_UPDATE_CLIENT_SCHEMA=1 "$here/../../dev" test tests/clients -q
cd "$here"
npm ci --ignore-scripts --no-audit --no-fund --silent
npx openapi-typescript openapi.json -o src/vendor/schema.d.ts
npx tsc --noEmit -p .
