#!/usr/bin/env bash
# Make sure a Chromium is there for the browser tests (tests/clients/test_graphiql_browser.py).
#
# Found on PATH (chromium, chromium-browser, google-chrome) or named by VECTORQL_TEST_CHROMIUM:
# nothing to do. Otherwise, as root with apt-get: install Debian's `chromium` package (Playwright
# drives it through executable_path; `playwright install` and its browser downloads are never
# used). Not root, or no apt-get: say so and carry on; the browser tests then skip with the reason
# (or fail under VECTORQL_TEST_REQUIRE_BACKENDS=1, as in CI).
#
# Usage: scripts/ensure_chromium.sh            (called by `make test`)
set -uo pipefail

find_chromium() {
  if [[ -n "${VECTORQL_TEST_CHROMIUM:-}" ]] && command -v "$VECTORQL_TEST_CHROMIUM" >/dev/null; then
    command -v "$VECTORQL_TEST_CHROMIUM"
    return 0
  fi
  local name
  for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null; then
      command -v "$name"
      return 0
    fi
  done
  return 1
}

if path="$(find_chromium)"; then
  echo "ensure_chromium: using $path"
  exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
  echo "ensure_chromium: no Chromium found and not root: not installing it;" \
    "the browser tests will skip (install Debian's chromium package to run them)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "ensure_chromium: no Chromium found and no apt-get: the browser tests will skip" >&2
  exit 0
fi

echo "ensure_chromium: installing Debian's chromium package"
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq chromium >/dev/null; then
  echo "ensure_chromium: installed $(find_chromium)"
else
  echo "ensure_chromium: apt-get could not install chromium: the browser tests will skip" >&2
fi
exit 0
