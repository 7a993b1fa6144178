#!/usr/bin/env bash
# record-traces.sh BUILD_DIR: regenerates the sample corpus traces/NAME.fstrace by recording each
# program traces/trace-NAME with `fragscope record`. The heap numbers each recorded run printed
# (heapstat lines: what the real glibc did during that very run) go to traces/NAME.heapstat.
# Run from anywhere; needs BUILD_DIR/fragscope and BUILD_DIR/traces/trace-* built.
# The programs are recorded from copies in the repository's build/corpus/ (git ignores build/),
# so the path a trace names as its executable (and its module) is build/corpus/trace-NAME of
# this checkout, whatever BUILD_DIR was: not a private temporary directory.
set -euo pipefail -o noclobber   # noclobber: never write the .heapstat through a symlink
umask 077

if [ $# -ne 1 ]; then
  echo "usage: scripts/record-traces.sh BUILD_DIR" >&2
  exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
cd "$repo"

# name and arguments, one trace per line
corpus=(
  "4000-blocks"
  "4000-blocks --trim"
  "hoarding"
  "arena-explosion"
  "aligned-gaps"
  "mmap-ratchet"
  "producer-consumer"
  "thread-churn"
)

progs="$repo/build/corpus"
mkdir -p "$progs"
for entry in "${corpus[@]}"; do
  read -r prog _ <<<"$entry"
  rm -f "$progs/trace-$prog"
  cp "$build/traces/trace-$prog" "$progs/trace-$prog"
done

for entry in "${corpus[@]}"; do
  read -r prog args <<<"$entry"
  name=$prog
  case "$args" in
    --trim) name="$prog-trim" ;;
  esac
  # shellcheck disable=SC2086  # args are words
  echo "record-traces: $name: fragscope record -o traces/$name.fstrace --force -- build/corpus/trace-$prog $args"
  rm -f "traces/$name.heapstat"
  "$build/fragscope" record -o "traces/$name.fstrace" --force -- "$progs/trace-$prog" $args \
    >"traces/$name.heapstat"
  size=$(stat -c %s "traces/$name.fstrace")
  echo "record-traces: $name: $size bytes"
done
