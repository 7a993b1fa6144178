#!/usr/bin/env bash
# make-screenshot.sh: docs/report-4000-blocks.png, the README's picture of the HTML report.
#
# Records the 4000-block example, replays it into a database, writes the HTML report and has
# headless Chromium (Debian's `chromium`) take a screenshot of its top: the headline figures,
# the timeline with the findings marked, and the first findings.
#
#   docs/make-screenshot.sh [BUILD_DIR] [OUT.png] [HEIGHT]
#
# BUILD_DIR defaults to build/ (run `make build` first); OUT to docs/report-4000-blocks.png.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
out="${2:-$here/report-4000-blocks.png}"
height="${3:-2400}"
fragscope="$build/fragscope"
prog="$build/traces/trace-4000-blocks"
for f in "$fragscope" "$prog"; do
  [ -x "$f" ] || { echo "make-screenshot: $f is missing: build first (make build)" >&2; exit 1; }
done
browser="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$browser" ] || { echo "make-screenshot: chromium is missing (scripts/install-deps.sh)" >&2; exit 1; }

tmp="$(mktemp -d /tmp/fs-screenshot.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
fragscope="$(cd "$(dirname "$fragscope")" && pwd)/fragscope"
prog="$(cd "$(dirname "$prog")" && pwd)/trace-4000-blocks"
# Inside the temporary folder, so the report names the trace without a temporary path.
(
  cd "$tmp"
  "$fragscope" record -q -o 4000-blocks.fstrace -- "$prog" >/dev/null
  "$fragscope" replay 4000-blocks.fstrace --db 4000-blocks.db >/dev/null 2>replay.log ||
    { cat replay.log >&2; exit 1; }
  "$fragscope" report 4000-blocks.db --format html -o report.html 2>report.log ||
    { cat report.log >&2; exit 1; }
)
# The screenshot goes to the temporary folder first, then into place.
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$tmp/profile" --hide-scrollbars --window-size="1400,$height" \
  --screenshot="$tmp/shot.png" "file://$tmp/report.html" >"$tmp/chromium.log" 2>&1 || {
  cat "$tmp/chromium.log" >&2
  exit 1
}
[ -s "$tmp/shot.png" ] || { echo "make-screenshot: chromium wrote no screenshot" >&2; exit 1; }
mv -f "$tmp/shot.png" "$out"
echo "make-screenshot: $out ($(stat -c %s "$out") bytes)"
