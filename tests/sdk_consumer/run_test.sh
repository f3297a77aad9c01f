#!/usr/bin/env bash
# Out-of-tree SDK test (docs/reference.md#building-out-of-tree): a plugin author with only an
# installed Barista can build a plugin with find_package(BaristaSDK) + barista_add_plugin(), and get
# a loadable NAME.so.
#
#   run_test.sh BUILD_DIR [CONSUMER_SOURCE_DIR]
#
# BUILD_DIR must be fully built (this script runs `cmake --install` on it). Everything else
# happens in a temporary folder that is removed on exit.
set -euo pipefail

build_dir=$(readlink -f "${1:?usage: run_test.sh BUILD_DIR [CONSUMER_SOURCE_DIR]}")
source_dir=$(readlink -f "${2:-$(dirname "$(readlink -f "$0")")/upper}")
work=$(mktemp -d "${TMPDIR:-/tmp}/barista-sdk-XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

fail() {
  echo "sdk_out_of_tree: FAIL: $*" >&2
  exit 1
}

# Runs a step quietly, showing its output only when it fails.
step() {
  local name=$1
  shift
  if ! "$@" >"$work/$name.log" 2>&1; then
    cat "$work/$name.log" >&2
    fail "$name failed: $*"
  fi
}

# 1. Install, as a packager would.
step install cmake --install "$build_dir" --prefix "$prefix"
[[ -f $prefix/include/barista/sdk.hpp ]] || fail "no include/barista/sdk.hpp in the prefix"
[[ -f $prefix/lib/cmake/BaristaSDK/BaristaSDKConfig.cmake ]] ||
  fail "no lib/cmake/BaristaSDK/BaristaSDKConfig.cmake in the prefix"

# 2. Configure and build the plugin against the prefix alone: no package registries, and the
#    SDK headers must compile warning-free in an author's strict build.
generator=()
if command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
step configure cmake -S "$source_dir" -B "$work/build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
  -DCMAKE_CXX_FLAGS="-Wall -Wextra -Wpedantic -Werror"
found=$(sed -n 's/^BaristaSDK_DIR:PATH=//p' "$work/build/CMakeCache.txt")
[[ $found == "$prefix/lib/cmake/BaristaSDK" ]] ||
  fail "find_package(BaristaSDK) found '$found', not the installed prefix"
step build cmake --build "$work/build"

# 3. The result is upper.so, a Barista plugin: a shared library with the manifest section (read
#    by baristad before dlopen) and exactly the two exports BARISTA_PLUGIN makes.
so=$work/build/upper.so
[[ -f $so ]] || fail "no upper.so was built (found: $(ls "$work/build"))"
readelf -h "$so" | grep -q 'DYN (Shared object file)' || fail "upper.so is not a shared object"
readelf -SW "$so" | grep -q '\.barista_manifest' || fail "upper.so has no .barista_manifest section"
# The manifest's fields (abi.hpp): magic[8], abi (u32, little-endian), name[64], version[32].
objcopy -O binary --only-section=.barista_manifest "$so" "$work/manifest.bin"
field() { dd if="$work/manifest.bin" bs=1 skip="$1" count="$2" status=none | tr -d '\0'; }
[[ $(field 0 8) == BARISTA ]] || fail "the manifest lacks its magic"
[[ $(field 12 64) == upper ]] || fail "the manifest names '$(field 12 64)', not 'upper'"
[[ $(field 76 32) == 1.0.0 ]] || fail "the manifest's version is '$(field 76 32)', not '1.0.0'"
abi=$(od -An -tu4 -j8 -N4 "$work/manifest.bin" | tr -d ' ')
sdk_abi=$(sed -n 's/.*kSdkAbi = \([0-9]*\);.*/\1/p' "$prefix/include/barista/abi.hpp")
[[ -n $sdk_abi && $abi == "$sdk_abi" ]] ||
  fail "the manifest's ABI is '$abi', the installed SDK's is '$sdk_abi'"
exports=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDRB]$/ {print $3}' | sort | tr '\n' ' ')
[[ $exports == "barista_plugin_create barista_plugin_manifest " ]] ||
  fail "upper.so should export only the manifest and the factory, exports: $exports"

# 4. The installed baristad loads it and runs a batch through it.
spool=$work/spool
cat >"$work/barista.yaml" <<YAML
spool: $spool
control_socket: $work/barista.sock
plugin_path: [$work/build]
pools:
  upper:
    plugin: upper
    workers: 2
    retries: 2
    backoff: 10ms
    config:
      suffix: "!"
YAML
step check-config "$prefix/bin/baristad" --check-config --config "$work/barista.yaml"
"$prefix/bin/baristad" --config "$work/barista.yaml" 2>"$work/baristad.log" &
daemon=$!
trap 'kill -KILL $daemon 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 200); do
  grep -q "baristad ready" "$work/baristad.log" && break
  kill -0 $daemon 2>/dev/null || { cat "$work/baristad.log" >&2; fail "baristad exited"; }
  sleep 0.05
done
printf '%s\n' '{"id":"a","payload":"hello"}' '{"id":"b","payload":""}' >"$spool/upper/inbox/.words.tmp"
mv "$spool/upper/inbox/.words.tmp" "$spool/upper/inbox/words.jsonl"
for _ in $(seq 200); do
  [[ -f $spool/upper/done/words/summary.json ]] && break
  sleep 0.05
done
[[ -f $spool/upper/done/words/summary.json ]] || { cat "$work/baristad.log" >&2; fail "the batch did not finish"; }
results=$(cat "$spool/upper/done/words/results.jsonl")
grep -q '"id":"a","status":"ok","attempts":1,.*"output":"HELLO!"' <<<"$results" ||
  fail "job a should be ok with HELLO!, results: $results"
grep -q '"id":"b","status":"failed","attempts":1,.*"error":"empty payload"' <<<"$results" ||
  fail "job b should fail once (fatal) with 'empty payload', results: $results"
grep -q '"jobs":2,"ok":1,"failed":1' "$spool/upper/done/words/summary.json" ||
  fail "wrong summary: $(cat "$spool/upper/done/words/summary.json")"
kill -TERM $daemon
wait $daemon || fail "baristad did not exit 0 on SIGTERM"

echo "sdk_out_of_tree: ok ($so)"
