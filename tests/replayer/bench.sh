#!/usr/bin/env bash
# tests/replayer/bench.sh BUILD_DIR [TRACE...]: model replay time / native replay time.
#
# For each trace, runs BUILD_DIR/tests/replayer/bench_replay (see bench_replay.c for what each
# side does and why the comparison is fair): medians of BENCH_RUNS (default 5, at least 5) runs,
# each measurement in a fresh process. Without TRACE arguments it first records three real
# programs with `fragscope record` into a temporary directory: a perl hash workload, jq over
# 200,000 JSON lines and an sqlite3 in-memory table (those installed). Prints each trace's full
# report, then one line per trace: model s, native s, ratio, and whether the target (<= 2.0) is
# met. Exit status 0; with BENCH_STRICT=1, 1 when a ratio is over the target.
set -euo pipefail

build=${1:-build}
shift || true
bench="$build/tests/replayer/bench_replay"
fragscope="$build/fragscope"
runs=${BENCH_RUNS:-5}
for f in "$bench" "$fragscope"; do
  [ -x "$f" ] || { echo "bench.sh: $f is missing (build first: cmake --build $build)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/fragscope-replay-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
umask 077

traces=("$@")
if [ ${#traces[@]} -eq 0 ]; then
  record() {   # record NAME PROGRAM ARGS...
    local name=$1
    shift
    if command -v "$1" >/dev/null 2>&1; then
      "$fragscope" record -q -o "$work/$name.fstrace" -- "$@" >/dev/null
      traces+=("$work/$name.fstrace")
    else
      echo "bench.sh: $1 not installed, no $name trace" >&2
    fi
  }
  record perl perl -e 'my %h; for my $i (1..300000) { $h{$i} = "x" x ($i % 200);
    delete $h{$i-1000} if $i % 3 } my @a = map { [$_, "y" x ($_%50)] } 1..200000;
    my $s = join ",", map { $_->[1] } @a; print length($s), "\n"'
  if command -v jq >/dev/null 2>&1; then
    awk 'BEGIN { for (i = 1; i <= 200000; i++) printf "{\"a\":%d,\"b\":[1,2,3,\"xx%d\"]}\n", i, i }' \
      > "$work/in.json"
    record jq jq -c '{x: .a, y: (.b | map(tostring) | join("-"))}' "$work/in.json"
  fi
  record sqlite3 sqlite3 :memory: "create table t(a integer primary key, b text);
    with recursive c(x) as (select 1 union all select x+1 from c where x<200000)
    insert into t select x, hex(randomblob(x%100)) from c; create index i on t(b);
    select count(*), sum(length(b)) from t;"
fi
[ ${#traces[@]} -gt 0 ] || { echo "bench.sh: no trace to measure" >&2; exit 1; }

summary="$work/summary"
: > "$summary"
over=0
for t in "${traces[@]}"; do
  out=$("$bench" "$t" "$runs")
  echo "$out"
  echo
  model=$(echo "$out" | awk '/^  model replay/ { print $3 }')
  native=$(echo "$out" | awk '/^  native replay/ { print $3 }')
  ratio=$(echo "$out" | awk '/^  ratio/ { print $6 }')
  verdict=met
  if awk -v r="$ratio" 'BEGIN { exit !(r > 2.0) }'; then verdict="NOT MET"; over=1; fi
  printf "%-28s %8s %8s %6s  %s\n" "$(basename "$t")" "$model" "$native" "$ratio" "$verdict" \
    >> "$summary"
done
printf "%-28s %8s %8s %6s  %s\n" "trace" "model s" "native s" "ratio" "target <= 2.0"
cat "$summary"
if [ "${BENCH_STRICT:-0}" = 1 ] && [ $over = 1 ]; then exit 1; fi
exit 0
