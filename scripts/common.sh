# Shared by scripts/demo, scripts/test and .ci/run: dependencies, ccache, configure + build.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/zproc-ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}

# build_tree DIR [cmake args...]: configure (once) and build with Ninja.
build_tree() {
  local dir=$1; shift
  "$ROOT/scripts/deps"
  if [[ ! -f "$dir/build.ninja" ]]; then
    cmake -S "$ROOT" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
  fi
  cmake --build "$dir" --parallel "$(nproc)"
}
