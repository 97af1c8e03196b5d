#!/usr/bin/env bash
# The `serf` agent against HashiCorp's, through the same command line, same run, on
# loopback (issue 9, "Measured against HashiCorp's agent").
#
#   scripts/bench-agent.sh [SIZES="8 32"] [IDLE=30]
#   env: OURS=path/to/serf (default: built with the `small` profile, static musl)
#        GO=/usr/bin/serf  CLI=<which serf drives both; default ours>
#
# For each implementation and cluster size N (LAN profile, the default of both):
#   join      N agents started, each told `serf join` to the first at once; the time
#             until every agent's `serf members` lists N alive;
#   event     `serf event -coalesce=false` on the first agent; every agent's handler
#             (`user=` script writing `date +%s%N`) gives the delivery time: p50, max;
#             EVENTS (default 5) events one after another, the median of each figure;
#   idle      once the agents have run SETTLE seconds (default 65; at least 5 s after the
#             join), over IDLE seconds: resident memory per agent (VmRSS,
#             mean), CPU seconds per minute per agent (utime+stime), loopback bytes per
#             second per agent (every packet of the run, IP headers included); PSS too
#             (proportional set size: pages shared between the N agents, such as the
#             binary and libc, counted once over all of them);
#   fail      `kill -9` of the last agent; the time until every other agent lists it
#             failed; "false" counts other members any agent lists failed or left;
#   leave     `serf leave` on the next-to-last agent; the time until every remaining
#             agent lists it left.
# Why settle 65 s: Go's memberlist does its first periodic push-pull a random stagger
# plus a whole period (30 s) after start, so before 60 s most Go agents have done none
# while ours (first one within the first period) have; an earlier window counted ours and
# not Go's (at 32 nodes a push-pull is about a quarter of the idle bytes).
# Times are from a loop polling each agent with the CLI (about 0.1-0.3 s of resolution at
# N = 32: each round spawns N CLI processes).
#
# Run as root, the script re-executes itself in a private network namespace (`unshare
# -n`): its ports cannot clash with anything, and the loopback byte counters count only
# its agents. Without root it runs on the host's loopback with OS-checked ports and the
# byte column includes other traffic (it says so). Every process it starts is killed on
# exit, even on ctrl-c.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${1:-${SIZES:-"8 32"}}
IDLE=${2:-${IDLE:-30}}
EVENTS=${EVENTS:-5}
SETTLE=${SETTLE:-65}
GO=${GO:-/usr/bin/serf}
# Ours is linked statically against musl, as HashiCorp's Go binary is static (TARGET=host
# for a glibc build, whose RSS also counts the shared libc pages it touched).
TARGET=${TARGET:-x86_64-unknown-linux-musl}
if [ "$TARGET" = host ]; then
  OURS=${OURS:-${CARGO_TARGET_DIR:-target}/small/serf}
else
  OURS=${OURS:-${CARGO_TARGET_DIR:-target}/$TARGET/small/serf}
fi

if [ ! -x "$OURS" ]; then
  if [ "$TARGET" = host ]; then
    echo "building ours: cargo build --profile small -p serf-agent" >&2
    cargo build --profile small -p serf-agent --bin serf >&2
  else
    rustup target add "$TARGET" >&2 ||
      { echo "cannot add the $TARGET target with rustup; run with TARGET=host" >&2; exit 1; }
    echo "building ours: cargo build --profile small --target $TARGET -p serf-agent" >&2
    cargo build --profile small --target "$TARGET" -p serf-agent --bin serf >&2
  fi
fi
[ -x "$GO" ] || { echo "HashiCorp's serf not found at $GO (apt-get install serf)" >&2; exit 1; }
OURS=$(realpath "$OURS")
if [ -z "${SERF_BENCH_NETNS:-}" ] && [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  exec env SERF_BENCH_NETNS=1 OURS="$OURS" GO="$GO" EVENTS="$EVENTS" SETTLE="$SETTLE" unshare -n "$0" "$SIZES" "$IDLE"
fi
ISOLATED=no
if [ -n "${SERF_BENCH_NETNS:-}" ]; then
  ip link set lo up
  ISOLATED=yes
fi

CLI=${CLI:-$OURS}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

now_ns() { date +%s%N; }
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }
ticks=$(getconf CLK_TCK)
lo_bytes() { awk '/^ *lo:/ { print $2 + $10 }' /proc/net/dev; }

port_free() { ! ss -Hltun "( sport = :$1 )" 2>/dev/null | grep -q .; }
base_port() { # 2N free ports from $1 (always free in the private namespace)
  local b=$1 n=$2 i
  while :; do
    for ((i = 0; i < 2 * n; i++)); do port_free $((b + i)) || { b=$((b + i + 1)); continue 2; }; done
    echo "$b"; return
  done
}

# count of members with status $2 (and name $3, if given) in agent $1's view
count() {
  "$CLI" members -rpc-addr="127.0.0.1:$1" -status="$2" ${3:+-name="$3"} 2>/dev/null | grep -c . || true
}

run() { # impl-binary label N
  local bin=$1 label=$2 n=$3 i
  local dir="$work/$label-$n"
  mkdir -p "$dir"
  printf '#!/bin/sh\ndate +%%s%%N > %s/ev.$SERF_SELF_NAME\n' "$dir" > "$dir/rec.sh"
  chmod +x "$dir/rec.sh"
  local base; base=$(base_port 21000 "$n")
  local gossip=() rpc=() mypids=()
  local started; started=$(date +%s)
  for ((i = 0; i < n; i++)); do
    gossip[i]=$((base + i)); rpc[i]=$((base + n + i))
    "$bin" agent -node="n$i" -bind="127.0.0.1:${gossip[i]}" -rpc-addr="127.0.0.1:${rpc[i]}" \
      -event-handler="user=$dir/rec.sh" -log-level=warn > "$dir/n$i.log" 2>&1 &
    mypids[i]=$!; pids+=($!)
    disown $!  # killed by pid; keeps `wait` below for the CLI jobs only
  done
  for ((i = 0; i < n; i++)); do
    until "$CLI" members -rpc-addr="127.0.0.1:${rpc[i]}" > /dev/null 2>&1; do sleep 0.05; done
  done

  # join
  local t0; t0=$(now_ns)
  for ((i = 1; i < n; i++)); do
    "$CLI" join -rpc-addr="127.0.0.1:${rpc[i]}" "127.0.0.1:${gossip[0]}" > /dev/null &
  done
  wait || true
  local left
  while :; do
    left=0
    for ((i = 0; i < n; i++)); do [ "$(count "${rpc[i]}" alive)" = "$n" ] || { left=1; break; }; done
    [ $left = 0 ] && break
    sleep 0.05
  done
  local join_ms; join_ms=$(ms_since "$t0")

  # idle
  sleep 5
  local wait_more=$(( started + SETTLE - $(date +%s) ))
  [ "$wait_more" -gt 0 ] && sleep "$wait_more"
  local cpu0=0 cpu1=0 b0 b1 rss=0 pss=0 f
  for p in "${mypids[@]}"; do read -r -a f < "/proc/$p/stat"; cpu0=$((cpu0 + f[13] + f[14])); done
  b0=$(lo_bytes)
  sleep "$IDLE"
  b1=$(lo_bytes)
  for p in "${mypids[@]}"; do
    read -r -a f < "/proc/$p/stat"; cpu1=$((cpu1 + f[13] + f[14]))
    rss=$((rss + $(awk '/^VmRSS/ { print $2 }' "/proc/$p/status")))
    pss=$((pss + $(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup")))
  done
  local rss_mib cpu_s_min bps
  rss_mib=$(awk -v r="$rss" -v n="$n" 'BEGIN { printf "%.1f", r / n / 1024 }')
  local pss_mib; pss_mib=$(awk -v r="$pss" -v n="$n" 'BEGIN { printf "%.2f", r / n / 1024 }')
  cpu_s_min=$(awk -v c=$((cpu1 - cpu0)) -v t="$ticks" -v s="$IDLE" -v n="$n" 'BEGIN { printf "%.3f", c / t / n * 60 / s }')
  bps=$(awk -v b=$((b1 - b0)) -v s="$IDLE" -v n="$n" 'BEGIN { printf "%.0f", b / s / n }')

  # event: EVENTS events one after another, each from the first agent once the previous
  # reached every handler; per event the p50 and max over the handlers, then the median
  # of each over the events (one event alone swings by 2x between runs here).
  local k e0 deadline lat c p50s="" maxs="" got=$n
  for ((k = 0; k < EVENTS; k++)); do
    rm -f "$dir"/ev.*
    e0=$(now_ns)
    "$CLI" event -rpc-addr="127.0.0.1:${rpc[0]}" -coalesce=false "bench$k" x > /dev/null
    deadline=$(( $(date +%s) + 30 ))
    while [ "$(ls "$dir" | grep -c '^ev\.')" -lt "$n" ] && [ "$(date +%s)" -lt $deadline ]; do sleep 0.01; done
    lat=$(for f in "$dir"/ev.*; do echo $(( ($(cat "$f") - e0) / 1000000 )); done | sort -n)
    c=$(echo "$lat" | grep -c .)
    [ "$c" -lt "$got" ] && got=$c
    p50s+="$(echo "$lat" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }') "
    maxs+="$(echo "$lat" | tail -1) "
    sleep 0.5
  done
  median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
  local p50 max
  p50=$(echo "$p50s" | median)
  max=$(echo "$maxs" | median)

  # failure
  local victim=$((n - 1))
  kill -KILL "${mypids[victim]}"
  t0=$(now_ns)
  while :; do
    left=0
    for ((i = 0; i < victim; i++)); do [ "$(count "${rpc[i]}" failed "n$victim")" = 1 ] || { left=1; break; }; done
    [ $left = 0 ] && break
    [ $(( ($(now_ns) - t0) / 1000000000 )) -gt 120 ] && break
    sleep 0.05
  done
  local fail_ms; fail_ms=$(ms_since "$t0")
  local false_pos=0
  for ((i = 0; i < victim; i++)); do
    false_pos=$((false_pos + $(count "${rpc[i]}" 'failed|left') - 1))
  done

  # leave
  # `serf leave` blocks until the leave is done (both agents wait for the broadcast and
  # a propagation delay): run it in the background and time what the others see.
  local leaver=$((n - 2))
  t0=$(now_ns)
  "$CLI" leave -rpc-addr="127.0.0.1:${rpc[leaver]}" > /dev/null 2>&1 &
  while :; do
    left=0
    for ((i = 0; i < leaver; i++)); do [ "$(count "${rpc[i]}" left "n$leaver")" = 1 ] || { left=1; break; }; done
    [ $left = 0 ] && break
    [ $(( ($(now_ns) - t0) / 1000000000 )) -gt 60 ] && break
    sleep 0.05
  done
  local leave_ms; leave_ms=$(ms_since "$t0")
  wait || true

  for p in "${mypids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  echo "$join_ms $p50 $max $got $fail_ms $false_pos $leave_ms $rss_mib $cpu_s_min $bps $pss_mib"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

echo "# serf agent: HashiCorp's ($("$GO" version | head -1)) vs ours ($("$OURS" version | head -1))"
echo "loopback, LAN profile, CLI: $CLI, idle window ${IDLE}s after ${SETTLE}s up, $EVENTS events (medians), private network namespace: $ISOLATED"
[ "$ISOLATED" = yes ] || echo "(bytes include any other loopback traffic on this host)"
for n in $SIZES; do
  # Not in a subshell: the agents' pids must reach the cleanup trap.
  run "$GO" go "$n" > "$work/go.res"
  run "$OURS" ours "$n" > "$work/ours.res"
  read -r gj gp gm gg gf gfp gl gr gc gb gpss < "$work/go.res"
  read -r oj op om og of ofp ol or oc ob opss < "$work/ours.res"
  echo
  echo "### N = $n"
  echo
  echo "| measure | HashiCorp | ours | ours/Go |"
  echo "|---|---|---|---|"
  echo "| join converged (ms) | $gj | $oj | $(ratio "$oj" "$gj") |"
  echo "| user event to all handlers, p50 (ms) | $gp | $op | $(ratio "$op" "$gp") |"
  echo "| user event to all handlers, max (ms) | $gm | $om | $(ratio "$om" "$gm") |"
  echo "| handlers reached | $gg/$n | $og/$n | |"
  echo "| kill -9 → all see failed (ms) | $gf | $of | $(ratio "$of" "$gf") |"
  echo "| false positives | $gfp | $ofp | |"
  echo "| leave → all see left (ms) | $gl | $ol | $(ratio "$ol" "$gl") |"
  echo "| resident memory per agent (MiB) | $gr | $or | $(ratio "$or" "$gr") |"
  echo "| proportional memory (PSS) per agent (MiB) | $gpss | $opss | $(ratio "$opss" "$gpss") |"
  echo "| idle CPU per agent (s/min) | $gc | $oc | $(ratio "$oc" "$gc") |"
  echo "| idle loopback bytes/s per agent | $gb | $ob | $(ratio "$ob" "$gb") |"
done
