#!/usr/bin/env bash
# Instructions per request, counted with callgrind (repeatable where times on these VMs are
# not): each count is the difference of two runs of different lengths, so start-up and exit
# cancel out. Needs valgrind (scripts/deps --bench) and a build in $BUILD (default build/).
#
#   bench/profile.sh client   # bench_scale's client, per co_await async_set (1 connection x 16)
#   bench/profile.sh server   # zproc server, per pipelined set (the same load)
#   bench/profile.sh client1  # the same two at depth 1 (one request at a time: what a round
#   bench/profile.sh server1  #   trip costs, a read and a write per request)
#   bench/profile.sh blocking # bench_scale --blocking's client, per blocking state.set()
#   bench/profile.sh fan      # bench_watch's watchers' process, per woken watcher (fan-out)
#   bench/profile.sh fanserver # the zproc server, per woken watcher (the same load)
#
# The callgrind files stay in $OUT (default /tmp/zproc-profile) for callgrind_annotate, e.g.
#   callgrind_annotate --inclusive=yes $OUT/server.30000.out | less
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
OUT=${OUT:-/tmp/zproc-profile}
what=${1:-}
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "profile.sh: valgrind is missing: scripts/deps --bench" >&2; exit 2; }

total() {  # the instructions a callgrind file counted
  callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
cg() { valgrind --tool=callgrind --callgrind-out-file="$1" "${@:2}"; }

# A wrapper that runs a program under callgrind, for the benchmarks that start it themselves.
wrapper() {  # wrapper NAME TARGET -> path
  local w="$OUT/$1.wrap.sh"
  printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file="%s/%s.$ZPROC_PROFILE_RUN.out" %s "$@"\n' \
    "$OUT" "$1" "$2" > "$w"
  chmod +x "$w"
  echo "$w"
}

per() {  # per NAME SHORT LONG UNITS: (total(LONG) - total(SHORT)) / UNITS
  local a b
  a=$(total "$OUT/$1.$2.out")
  b=$(total "$OUT/$1.$3.out")
  echo "$1: $(( (b - a) / $4 )) instructions per $5 (runs of $2 and $3)"
}

scale=(--no-redis --clients 1 --depth 16 --ns 1 --idle 0)
runs=(10000 30000) unit=set
if [[ $what == client1 || $what == server1 ]]; then
  # Depth 1: each request is a round trip under valgrind, so shorter runs.
  scale=(--no-redis --clients 1 --depth 1 --ns 1 --idle 0)
  runs=(2000 6000) unit="set at depth 1"
fi
case "$what" in
  client|client1)
    for n in "${runs[@]}"; do cg "$OUT/$what.$n.out" "$BUILD/bench/bench_scale" "${scale[@]}" --count $n >/dev/null 2>&1; done
    per "$what" "${runs[0]}" "${runs[1]}" $(( runs[1] - runs[0] )) "$unit" ;;
  blocking)
    for n in 2000 6000; do cg "$OUT/blocking.$n.out" "$BUILD/bench/bench_scale" "${scale[@]}" --blocking --count $n >/dev/null 2>&1; done
    per blocking 2000 6000 4000 "blocking set" ;;
  server|server1)
    w=$(wrapper "$what" "$BUILD/apps/zproc/zproc")
    for n in "${runs[@]}"; do
      ZPROC_PROFILE_RUN=$n ZPROC_BENCH_ZPROC=$w "$BUILD/bench/bench_scale" "${scale[@]}" --count $n >/dev/null 2>&1
    done
    per "$what" "${runs[0]}" "${runs[1]}" $(( runs[1] - runs[0] )) "$unit" ;;
  fan|fanserver)
    if [[ $what == fan ]]; then
      w=$(wrapper fan "$BUILD/bench/bench_watch")
      export ZPROC_BENCH_FAN_CHILD=$w
    else
      w=$(wrapper fanserver "$BUILD/apps/zproc/zproc")
      export ZPROC_BENCH_ZPROC=$w
    fi
    for n in 20 40; do
      ZPROC_PROFILE_RUN=$n "$BUILD/bench/bench_watch" --fan-only $n >/dev/null 2>&1
    done
    per "$what" 20 40 20000 "woken watcher" ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2 ;;
esac
