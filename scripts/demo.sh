#!/usr/bin/env bash
# demo.sh BUILD_DIR: the `make demo` walk-through. Records the 4000-block example
# (traces/blocks4000.c) into a fresh demo-out/, reads the trace back, replays it through the
# ptmalloc2 model, sweeps tcache_count and mxfast, and prints the text report and writes the HTML
# one. Each step prints a one-line header.
#
# While parts of fragscope are still being written, a subcommand is "available" when
# `fragscope COMMAND --help` exits 0; a step whose subcommand is not available prints
# "skipped: fragscope COMMAND is not available yet" and the rest goes on. The script exits 0 when
# every step that could run succeeded, 1 otherwise.
#
# DEMO_OUT=DIR writes elsewhere than demo-out/ (the tests do); an existing DIR is replaced only
# if an earlier demo made it (it holds .fragscope-demo).
set -uo pipefail
umask 077

if [ $# -ne 1 ]; then
  echo "usage: scripts/demo.sh BUILD_DIR" >&2
  exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" 2>/dev/null && pwd) || { echo "demo: no build directory '$1'" >&2; exit 2; }
cd "$repo" || exit 1

fs="$build/fragscope"
prog="$build/traces/trace-4000-blocks"
out="${DEMO_OUT:-demo-out}"
trace="$out/4000-blocks.fstrace"
db="$out/demo.db"
html="$out/report.html"
failed=0
step=0
steps=7

header() {
  step=$((step + 1))
  printf '\n==> [%d/%d] %s\n' "$step" "$steps" "$*"
}

# available COMMAND: is `fragscope COMMAND` implemented in this build?
available() {
  "$fs" "$1" --help >/dev/null 2>&1
}

skipped() {
  echo "skipped: fragscope $1 is not available yet"
}

# run DESCRIPTION CMD...: runs a step's command, reports a failure without stopping the demo.
run() {
  local what=$1
  shift
  "$@"
  local rc=$?
  [ $rc -eq 0 ] && return 0
  echo "demo: $what failed (exit status $rc): $*" >&2
  failed=1
  return $rc
}

header "building the 4000-block example ($prog)"
if [ ! -x "$fs" ] || [ ! -x "$prog" ]; then
  run "build" cmake --build "$build" --target fragscope trace-4000-blocks || exit 1
fi
echo "built: $prog"

if [ -e "$out" ] || [ -L "$out" ]; then
  if [ "$out" != "demo-out" ] && { [ -L "$out" ] || [ ! -e "$out/.fragscope-demo" ]; }; then
    echo "demo: $out exists and was not made by the demo; not replacing it" >&2
    exit 2
  fi
  rm -rf -- "$out"
fi
mkdir -m 700 -- "$out" || exit 1
: >"$out/.fragscope-demo"

header "recording: fragscope record -o $trace -- trace-4000-blocks"
echo "(malloc(52722) + malloc(1), 4000 times; free all in reverse; malloc(2000) + free)"
have_trace=0
if available record; then
  echo "(the program prints the real glibc heap after each phase: brk_offset, heap_rss, mallinfo2)"
  run "record" "$fs" record -o "$trace" -- "$prog" && have_trace=1
else
  skipped record
fi

header "reading the trace back: fragscope dump --stats $trace"
if ! available dump; then
  skipped dump
elif [ $have_trace -eq 0 ]; then
  echo "skipped: no trace was recorded"
else
  run "dump" "$fs" dump --stats "$trace"
fi

header "replaying with the default settings: fragscope replay $trace"
if ! available replay; then
  skipped replay
elif [ $have_trace -eq 0 ]; then
  echo "skipped: no trace was recorded"
else
  run "replay" "$fs" replay "$trace"
fi

header "sweeping tcache_count=0,7 x mxfast=0,128: fragscope sweep --db $db"
have_db=0
if ! available sweep; then
  skipped sweep
  # Without sweep, a plain replay can still fill the database the report reads.
  if [ $have_trace -eq 1 ] && available replay && "$fs" replay --help 2>&1 | grep -q -- '--db'; then
    echo "instead: fragscope replay $trace --db $db"
    run "replay --db" "$fs" replay "$trace" --db "$db" >/dev/null && have_db=1
  fi
elif [ $have_trace -eq 0 ]; then
  echo "skipped: no trace was recorded"
else
  run "sweep" "$fs" sweep "$trace" --set tcache_count=0,7 --set mxfast=0,128 --db "$db" && have_db=1
fi

header "report: fragscope report $db"
if ! available report; then
  skipped report
elif [ $have_db -eq 0 ]; then
  echo "skipped: no database was written"
else
  run "report" "$fs" report "$db"
fi

header "HTML report: fragscope report $db --format html -o $html"
if ! available report; then
  skipped report
elif ! "$fs" report --help 2>&1 | grep -q html; then
  echo "skipped: fragscope report --format html is not available yet"
elif [ $have_db -eq 0 ]; then
  echo "skipped: no database was written"
else
  run "report --format html" "$fs" report "$db" --format html -o "$html" &&
    echo "wrote $(cd "$(dirname "$html")" && pwd)/$(basename "$html")"
fi

echo
if [ $failed -ne 0 ]; then
  echo "demo: some steps failed (see above)" >&2
  exit 1
fi
echo "demo: done; everything that is available ran (outputs in $out/)"
exit 0
