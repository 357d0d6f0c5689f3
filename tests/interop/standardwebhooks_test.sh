#!/usr/bin/env bash
# Installs the npm package standardwebhooks into NPM_DIR (once) and runs the interop checks.
# Usage: standardwebhooks_test.sh TOOL NPM_DIR
set -euo pipefail
tool=$1
npm_dir=$2
here=$(cd "$(dirname "$0")" && pwd)

for program in node npm; do
  if ! command -v "$program" >/dev/null; then
    echo "standardwebhooks_test: $program is required (scripts/install-deps installs it)" >&2
    exit 1
  fi
done
if [ ! -f "$npm_dir/node_modules/standardwebhooks/package.json" ]; then
  mkdir -p "$npm_dir"
  npm install --prefix "$npm_dir" --no-audit --no-fund --loglevel=error standardwebhooks@1.1.1
fi
NODE_PATH="$npm_dir/node_modules" node "$here/standardwebhooks_test.js" "$tool"
