#!/usr/bin/env bash
# Every test: installs what the suite needs (scripts/setup.sh), then the workspace's
# tests (the wasm interop test builds the wasm package itself), the wasm driver's build
# for WASI, and its JavaScript package's own tests under Node.js.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo test --workspace"
cargo test --workspace

echo "== cargo build -p serf-driver-wasm --target wasm32-wasip1"
cargo build -p serf-driver-wasm --target wasm32-wasip1

# The package was built by the interop test above (scripts/build-wasm.sh).
echo "== node --test (serf-driver-wasm/js)"
(cd serf-driver-wasm/js && timeout 300 node --test test/)
