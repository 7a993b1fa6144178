#!/usr/bin/env bash
# record-traces.sh BUILD_DIR: regenerates the sample corpus traces/NAME.fstrace by recording each
# program traces/trace-NAME with `fragscope record`. The heap numbers each recorded run printed
# (heapstat lines: what the real glibc did during that very run) go to traces/NAME.heapstat.
# Run from anywhere; needs BUILD_DIR/fragscope and BUILD_DIR/traces/trace-* built.
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

for entry in "${corpus[@]}"; do
  read -r prog args <<<"$entry"
  name=$prog
  case "$args" in
    --trim) name="$prog-trim" ;;
  esac
  # shellcheck disable=SC2086  # args are words
  echo "record-traces: $name: fragscope record -o traces/$name.fstrace --force -- trace-$prog $args"
  rm -f "traces/$name.heapstat"
  "$build/fragscope" record -o "traces/$name.fstrace" --force -- "$build/traces/trace-$prog" $args \
    >"traces/$name.heapstat"
  size=$(stat -c %s "traces/$name.fstrace")
  echo "record-traces: $name: $size bytes"
done
