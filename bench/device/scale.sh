#!/usr/bin/env bash
# The many-core measurement of issue 15 (docs/performance.md), run once on the device machine:
#
#   here:   scripts/device-bundle                  (builds .device-bundle/, ignored by git)
#   there:  bash bench/device/scale.sh             (run tool, carry [".device-bundle"])
#
# Copies the bundle to /tmp/zb (where bundle.sh points its programs), then runs bench_scale with
# the server on 1, 4 and 16 threads and 8 client threads, Redis beside it in the same run, then
# the durable rows (--fsync always, Redis with appendfsync always), then bench_swarm at 1, 2, 4,
# 8 and 16 workers (Python's Pool beside it if the machine has python3; its uneven mode shows
# the tail), and writes everything into $OUT/scale.txt (the one file that comes back).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${OUT:-/tmp}
mkdir -p /tmp/zb && cp -r "$root/.device-bundle/"* /tmp/zb/
export ZPROC_BENCH_ZPROC=/tmp/zb/bin/zproc ZPROC_BENCH_REDIS_DIR=/tmp/zb/bin
{
  echo "cores: $(nproc)"; date -u
  /tmp/zb/bin/bench_scale --clients 1,16,64,256 --depth 1,16,256 --ns 1,64 \
    --threads 1,4,16 --client-threads 8
  /tmp/zb/bin/bench_scale --quick --fsync always --clients 16,256 --depth 1 --ns 64 \
    --threads 1,16 --client-threads 8 --idle 0
  /tmp/zb/bin/bench_swarm --quick --workers 1,2,4,8,16
} > "$out/scale.txt" 2>&1
tail -n 5 "$out/scale.txt"
