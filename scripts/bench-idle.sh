#!/usr/bin/env bash
# Idle-cluster cost, one process per node, on 127.0.0.1: our node (the tokio driver's
# `node` example) against HashiCorp's `serf agent` (Debian package `serf`), measured the
# same way in the same run.
#
#   scripts/bench-idle.sh [ours|go|both] [NODES=32] [SECS=60]
#
# Ours is built with the `small` profile (PROFILE=release to compare): size-optimised,
# one codegen unit, no unwinding, as one would deploy one node per process; and linked
# statically against musl (TARGET=host for a glibc build), as HashiCorp's Go binary is
# static: a dynamically linked process's RSS counts every page of libc and libm it
# touched, shared with every other process (PSS, printed too, divides them).
#
# For each implementation: start NODES processes, each joining the first; wait for the
# cluster to form and settle (30 s); then measure over SECS seconds
#   - resident memory per process (VmRSS at the end, mean and max),
#   - CPU seconds per minute per process (utime + stime from /proc, summed),
#   - bytes sent per second per process (UDP from each node's port, TCP to or from it,
#     counted by an iptables chain on the loopback's OUTPUT path: IP headers included,
#     the same for both).
# Needs root (iptables) and, for `go`, `apt-get install serf`. Every process it starts is
# stopped and the iptables chain removed on exit, even on ctrl-c.
set -euo pipefail
cd "$(dirname "$0")/.."

which=${1:-both}
nodes=${2:-32}
secs=${3:-60}
settle=30
chain=SERFBENCH
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  iptables -D OUTPUT -j "$chain" 2>/dev/null || true
  iptables -F "$chain" 2>/dev/null || true
  iptables -X "$chain" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

free_port() { ! ss -Hltun "( sport = :$1 )" | grep -q .; }

# A base port with 2*nodes free ports above it (node ports, then RPC ports for Go's agent).
pick_base() {
  local base=$1
  while :; do
    local ok=1
    for ((i = 0; i < 2 * nodes; i++)); do
      if ! free_port $((base + i)); then ok=0; base=$((base + i + 1)); break; fi
    done
    [ $ok = 1 ] && { echo "$base"; return; }
  done
}

ticks=$(getconf CLK_TCK)
cpu_ticks() { # sum of utime+stime over the pids
  local t=0
  for p in "${pids[@]}"; do
    read -r -a f < "/proc/$p/stat"
    t=$((t + f[13] + f[14]))
  done
  echo "$t"
}

measure() { # name base
  local name=$1 base=$2
  iptables -N "$chain" 2>/dev/null || iptables -F "$chain"
  iptables -C OUTPUT -j "$chain" 2>/dev/null || iptables -I OUTPUT -j "$chain"
  for ((i = 0; i < nodes; i++)); do
    iptables -A "$chain" -o lo -p udp --sport $((base + i))
    iptables -A "$chain" -o lo -p tcp --sport $((base + i))
    # Connections a node opens leave from an ephemeral port: count them by destination.
    iptables -A "$chain" -o lo -p tcp --dport $((base + i))
  done
  echo "[$name] $nodes nodes started; settling ${settle}s" >&2
  sleep "$settle"
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "[$name] a node died" >&2; exit 1; }; done
  iptables -Z "$chain"
  local c0; c0=$(cpu_ticks)
  echo "[$name] measuring ${secs}s" >&2
  sleep "$secs"
  local c1; c1=$(cpu_ticks)
  local bytes; bytes=$(iptables -L "$chain" -v -n -x | awk 'NR>2 {s+=$2} END {print s+0}')
  # The split, for comparing with the simulator (which counts payload): per process and
  # second, UDP datagrams and their bytes, TCP segments and their bytes (headers in).
  iptables -L "$chain" -v -n -x | awk -v n="$nodes" -v s="$secs" -v name="$name" '
    NR>2 && ($3 == "17" || $3 == "udp") {up+=$1; ub+=$2}
    NR>2 && ($3 == "6" || $3 == "tcp") {tp+=$1; tb+=$2}
    END {printf "%-6s udp %.2f datagrams/s %.0f B/s (payload %.0f B/s)   tcp %.2f segments/s %.0f B/s\n",
      name, up/n/s, ub/n/s, (ub - 28*up)/n/s, tp/n/s, tb/n/s}' >&2
  local rss_sum=0 rss_max=0 pss_sum=0
  for p in "${pids[@]}"; do
    local kb; kb=$(awk '/VmRSS/ {print $2}' "/proc/$p/status")
    rss_sum=$((rss_sum + kb)); [ "$kb" -gt "$rss_max" ] && rss_max=$kb
    pss_sum=$((pss_sum + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")))
  done
  awk -v n="$nodes" -v s="$secs" -v t="$ticks" -v dc=$((c1 - c0)) -v b="$bytes" \
      -v rs="$rss_sum" -v rm="$rss_max" -v ps="$pss_sum" -v name="$name" 'BEGIN {
    printf "%-6s rss %.2f MiB (max %.2f, pss %.2f)   cpu %.3f s/min   sent %.0f B/s   (per process, %d nodes, %d s)\n",
      name, rs / n / 1024, rm / 1024, ps / n / 1024, dc / t / n * 60 / s, b / n / s, n, s }'
  iptables -D OUTPUT -j "$chain"; iptables -F "$chain"; iptables -X "$chain"
}

stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

run_ours() {
  local profile=${PROFILE:-small} target=${TARGET:-x86_64-unknown-linux-musl} bin
  if [ "$target" = host ]; then
    cargo build --profile "$profile" -q -p serf-driver-tokio --example node
    bin=target/$profile/examples/node
  else
    rustup target add "$target" >/dev/null 2>&1 ||
      { echo "cannot add the $target target with rustup; run with TARGET=host" >&2; exit 1; }
    cargo build --profile "$profile" --target "$target" -q -p serf-driver-tokio --example node
    bin=target/$target/$profile/examples/node
  fi
  local base; base=$(pick_base 21000)
  for ((i = 0; i < nodes; i++)); do
    local seed=(); [ "$i" -gt 0 ] && seed=("127.0.0.1:$base")
    "$bin" "n$i" "127.0.0.1:$((base + i))" "${seed[@]}" >/dev/null 2>&1 &
    pids+=($!)
    sleep 0.05
  done
  measure ours "$base"
  stop_all
}

run_go() {
  command -v serf >/dev/null || { echo "HashiCorp's serf is not installed: apt-get install serf" >&2; exit 1; }
  local base; base=$(pick_base 23000)
  for ((i = 0; i < nodes; i++)); do
    local join=(); [ "$i" -gt 0 ] && join=("-join=127.0.0.1:$base")
    serf agent -node="n$i" -bind="127.0.0.1:$((base + i))" \
      -rpc-addr="127.0.0.1:$((base + nodes + i))" "${join[@]}" -log-level=err >/dev/null 2>&1 &
    pids+=($!)
    sleep 0.05
  done
  measure go "$base"
  stop_all
}

case $which in
  ours) run_ours ;;
  go) run_go ;;
  both) run_go; run_ours ;;
  *) echo "usage: $0 [ours|go|both] [NODES] [SECS]" >&2; exit 2 ;;
esac
