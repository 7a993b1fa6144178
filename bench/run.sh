#!/usr/bin/env bash
# bench/run.sh BUILD_DIR: what recording costs, measured against a plain run in the same run.
#
# Runs malloc_bench (20M malloc/free calls, sizes 16..4096) with 1 and 4 threads: plain, under
# libfragscope-trace.so without and with stacks, and under heaptrack (--raw, if installed).
# Configurations are interleaved within each repetition so that they share the machine's
# conditions; the table shows medians over BENCH_REPS repetitions (default 3):
#   wall      seconds from start to exit (for the recorder: until the trace is complete)
#   ratio     wall / plain wall
#   cpu       program CPU seconds (user+sys); "+f" adds the recorder's flusher task
#   B/event   trace bytes per call
#   extraRSS  peak RSS above the plain run's, MiB
# Environment: BENCH_EVENTS (default 20000000), BENCH_REPS (3), BENCH_THREADS ("1 4"),
# BENCH_HEAPTRACK=0 to skip heaptrack, BENCH_BASE=OTHER_BUILD_DIR to also run that build's
# recorder (rows base-nostacks, base-stacks) in the same repetitions, for an A/B comparison.
set -euo pipefail

build=${1:-build}
bench="$build/bench/malloc_bench"
runner="$build/bench/bench_exec"
preload="$build/libfragscope-trace.so"
base_preload=${BENCH_BASE:+$BENCH_BASE/libfragscope-trace.so}
events=${BENCH_EVENTS:-20000000}
reps=${BENCH_REPS:-3}
threads_list=${BENCH_THREADS:-"1 4"}
for f in "$bench" "$runner" "$preload" $base_preload; do
  [ -e "$f" ] || { echo "bench: $f is missing (build first: cmake --build $build)" >&2; exit 1; }
done
have_heaptrack=0
if [ "${BENCH_HEAPTRACK:-1}" != 0 ] && command -v heaptrack >/dev/null 2>&1; then
  have_heaptrack=1
fi

work=$(mktemp -d /tmp/fragscope-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
results="$work/results"
: > "$results"

# run NAME THREADS: one measurement appended to $results as
#   name threads wall maxrss_kb cpu bytes flusher_cpu
run() {
  local name=$1 threads=$2 out="$work/trace" err="$work/err" bytes=0 fcpu=0
  rm -f "$out" "$out".* "$work"/ht*
  case $name in
    plain)
      "$runner" -- "$bench" "$threads" "$events" >/dev/null 2>"$err" ;;
    nostacks|stacks|base-nostacks|base-stacks)
      local st=1 lib=$preload
      case $name in *nostacks) st=0 ;; esac
      case $name in base-*) lib=$base_preload ;; esac
      "$runner" -e LD_PRELOAD="$lib" -e FRAGSCOPE_OUT="$out" -e FRAGSCOPE_STACKS=$st \
        -e FRAGSCOPE_STATS=1 -e FRAGSCOPE_SAMPLE_MS=100 -- "$bench" "$threads" "$events" \
        >/dev/null 2>"$err"
      # the flusher finishes the file after the program: wait for its report
      for _ in $(seq 1 3000); do grep -aq "flusher_cpu_ms" "$err" && break; sleep 0.01; done
      bytes=$(stat -c %s "$out")
      fcpu=$(grep -a flusher_cpu_ms "$err" | sed -n 's/.*flusher_cpu_ms \([0-9]*\).*/\1/p' | head -1)
      fcpu=$(awk -v m="${fcpu:-0}" 'BEGIN { printf "%.3f", m / 1000 }') ;;
    heaptrack)
      "$runner" -- heaptrack --raw -o "$work/ht" "$bench" "$threads" "$events" >/dev/null 2>"$err"
      bytes=$(stat -c %s "$work"/ht*.raw.* 2>/dev/null | head -1) ;;
  esac
  local line
  line=$(grep -a '^bench_exec ' "$err" | tail -1)
  local wall=${line#*wall_s=}; wall=${wall%% *}
  local rss=${line#*maxrss_kb=}; rss=${rss%% *}
  local cpu=${line#*cpu_s=}; cpu=${cpu%% *}
  echo "$name $threads $wall $rss $cpu ${bytes:-0} ${fcpu:-0}" >> "$results"
}

configs="plain nostacks stacks"
[ -n "$base_preload" ] && configs="$configs base-nostacks base-stacks"
[ $have_heaptrack = 1 ] && configs="$configs heaptrack"
echo "fragscope bench: malloc_bench, $events calls, $reps repetitions, threads: $threads_list"
echo "machine: $(nproc) CPUs, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$reps"); do
  for t in $threads_list; do
    for c in $configs; do
      run "$c" "$t"
    done
  done
  echo "  repetition $r done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v n="$1" -v t="$2" -v c="$3" '$1 == n && $2 == t { print $c }' "$results"; }

printf "\n%-13s %7s %9s %7s %8s %8s %9s %9s\n" config threads wall ratio cpu "cpu+f" B/event extraRSS
for t in $threads_list; do
  pw=$(col plain "$t" 3 | median)
  prss=$(col plain "$t" 4 | median)
  for c in $configs; do
    w=$(col "$c" "$t" 3 | median)
    rss=$(col "$c" "$t" 4 | median)
    cpu=$(col "$c" "$t" 5 | median)
    fcpu=$(col "$c" "$t" 7 | median)
    b=$(col "$c" "$t" 6 | median)
    awk -v c="$c" -v t="$t" -v w="$w" -v pw="$pw" -v cpu="$cpu" -v f="$fcpu" -v b="$b" \
        -v ev="$events" -v rss="$rss" -v prss="$prss" 'BEGIN {
      printf "%-13s %7d %9.3f %7.2f %8.3f %8.3f %9s %9.1f\n", c, t, w, w / pw, cpu, cpu + f,
             (c == "plain" ? "-" : sprintf("%.2f", b / ev)), (rss - prss) / 1024 }'
  done
done
cat <<'EOF'

Targets: ratio <= 1.3 without stacks, <= 2.0 with stacks (1 thread), <= 2.5 with 4 threads;
<= 2.5 bytes/event with stacks; extra RSS <= 32 MiB. On a machine with 2 CPUs the recorder's
flusher task competes with the program's threads for the CPUs ("cpu+f" shows its share).
EOF
