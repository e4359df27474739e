#!/usr/bin/env bash
# Dev-time check of a run report as a person sees it: a headless Chromium screenshot of
# report.html (full page height, desktop width) written next to it or to OUT.
#   tools/report_screenshot.sh runs/<id>/report.html [OUT.png] [WIDTH]
# Needs chromium (Debian: apt-get install chromium). Never used by the build or the tests.
set -euo pipefail
report="${1:?usage: tools/report_screenshot.sh REPORT.html [OUT.png] [WIDTH]}"
out="${2:-${report%.html}.png}"
width="${3:-1280}"
[ -f "$report" ] || { echo "no such file: $report" >&2; exit 1; }
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[ -n "$browser" ] || { echo "chromium not found (apt-get install chromium)" >&2; exit 1; }

# Headless Chromium cannot size the window to the page, so the window is tall (HEIGHT, default
# 6000 px: the whole report at 1280 px with its collapsible config and data card closed); the page
# ends in blank space below. Set HEIGHT smaller to see the top only (the viewer's first screen).
height="${HEIGHT:-6000}"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless=new --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
    --window-size="${width},${height}" --screenshot="$(realpath -m "$out")" "file://$(realpath "$report")" >/dev/null 2>&1
echo "$out"
