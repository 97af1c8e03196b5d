#!/usr/bin/env bash
# Builds the wasm package of serf-driver-wasm into serf-driver-wasm/js/pkg/ (the .wasm and
# its wasm-bindgen JavaScript glue and TypeScript types), for Node.js (`--target nodejs`).
#
#   scripts/build-wasm.sh            # release build, optimised for size (profile `small`, opt-level z)
#   scripts/build-wasm.sh --opt      # also run `wasm-opt -Oz` (binaryen from npm) and
#                                    # print raw and gzipped sizes at each stage
#
# Needs, all from package registries (nothing is downloaded from elsewhere):
#   rustup target add wasm32-unknown-unknown
#   cargo install wasm-bindgen-cli --version =<the wasm-bindgen version in Cargo.lock> --locked
#   for --opt: npm install --prefix serf-driver-wasm/js --no-save binaryen@132.0.0
#              (or WASM_OPT=/path/to/wasm-opt)
# Each missing tool stops the build with the command that installs it.
#
# Cargo output goes to $CARGO_TARGET_DIR/wasm (or target/wasm), so this can run while
# another cargo holds the main target directory (the interop test calls it from
# `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

opt=0
for arg in "$@"; do
  case "$arg" in
    --opt) opt=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "build-wasm.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

die() { echo "build-wasm.sh: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install Rust with rustup"
if command -v rustup >/dev/null; then
  rustup target list --installed | grep -qx wasm32-unknown-unknown ||
    die "the wasm32-unknown-unknown target is missing: rustup target add wasm32-unknown-unknown"
fi

# The CLI must be exactly the crate's version (their schema versions must match).
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
[ -n "$want" ] || die "no wasm-bindgen in Cargo.lock (run cargo build once)"
command -v wasm-bindgen >/dev/null ||
  die "wasm-bindgen not found: cargo install wasm-bindgen-cli --version =$want --locked"
have=$(wasm-bindgen --version | awk '{print $2}')
[ "$have" = "$want" ] ||
  die "wasm-bindgen is $have but the crate is $want: cargo install wasm-bindgen-cli --version =$want --locked --force"

target_dir="${CARGO_TARGET_DIR:-$root/target}/wasm"
# The `small` profile (fat LTO, one codegen unit, abort on panic, stripped) at opt-level
# "z": 9% smaller than its "s" here (625 KB against 689 KB after wasm-bindgen, 231 KB
# against 259 KB gzipped), and membership traffic needs little speed.
CARGO_PROFILE_SMALL_OPT_LEVEL=z CARGO_TARGET_DIR="$target_dir" cargo build --quiet \
  -p serf-driver-wasm --target wasm32-unknown-unknown --profile small
wasm="$target_dir/wasm32-unknown-unknown/small/serf_driver_wasm.wasm"
out="$root/serf-driver-wasm/js/pkg"
# --opt optimises a fresh wasm-bindgen output, never an already optimised one.
[ "$opt" = 1 ] && rm -f "$out/.source"
# Regenerate only when the .wasm changed, so an up-to-date package costs nothing.
if [ ! -f "$out/serf_driver_wasm_bg.wasm" ] || [ ! -f "$out/.source" ] ||
   ! cmp -s "$out/.source" <(cksum < "$wasm"); then
  rm -rf "$out"
  wasm-bindgen --target nodejs --out-dir "$out" "$wasm"
  cksum < "$wasm" > "$out/.source"
fi

size() { echo "$(stat -c %s "$1") bytes, $(gzip -9c < "$1" | wc -c) gzipped"; }

if [ "$opt" = 1 ]; then
  wasm_opt="${WASM_OPT:-}"
  if [ -z "$wasm_opt" ]; then
    if command -v wasm-opt >/dev/null; then
      wasm_opt=wasm-opt
    elif [ -x serf-driver-wasm/js/node_modules/.bin/wasm-opt ]; then
      wasm_opt=serf-driver-wasm/js/node_modules/.bin/wasm-opt
    else
      die "wasm-opt not found: npm install --prefix serf-driver-wasm/js --no-save binaryen@132.0.0 (or set WASM_OPT)"
    fi
  fi
  bg="$out/serf_driver_wasm_bg.wasm"
  echo "cargo (profile small): $(size "$wasm")"
  echo "after wasm-bindgen:    $(size "$bg")"
  # Rust enables these features by default; older binaryen refuses them unless told.
  "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    -o "$bg.opt" "$bg"
  mv "$bg.opt" "$bg"
  echo "after wasm-opt -Oz:    $(size "$bg")"
fi
echo "built $out"
