#!/usr/bin/env bash
# Installs what the whole test suite needs beyond Rust itself, from package registries
# only (nothing is downloaded from anywhere else), and skips whatever is already there:
#   - the wasm targets (rustup) and the wasm-bindgen command-line tool at exactly the
#     version of the wasm-bindgen crate in Cargo.lock (cargo install, about a minute and a half once);
#   - Node.js, for the wasm driver's interoperability test (apt, if missing);
#   - HashiCorp's `serf` (Debian package), which the agent's interoperability tests drive
#     (optional: without it those tests say they were skipped and why).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown wasm32-wasip1
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
  echo "== cargo install wasm-bindgen-cli $want (once; about a minute and a half)"
  # An unoptimised build: 1.5 min to install instead of 6.5, and it still turns our
  # .wasm into the same bytes and glue in about a second.
  cargo install wasm-bindgen-cli --version "=$want" --locked --force --debug
fi

apt_install() { # package: installs it with apt when we can (root, apt present)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get install -y "$1" || { apt-get update && apt-get install -y "$1"; }; } >/dev/null
  else
    return 1
  fi
}
command -v node >/dev/null || apt_install nodejs ||
  { echo "Node.js is missing: install it (apt-get install nodejs)" >&2; exit 1; }
command -v serf >/dev/null || apt_install serf ||
  echo "HashiCorp's serf is not installed (apt-get install serf): the agent's interoperability tests will be skipped" >&2
