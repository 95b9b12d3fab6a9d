#!/usr/bin/env bash
# Make sure the external tools that some tests drive are there, from Debian's packages:
#   chromium        the browser tests (tests/clients/test_graphiql_browser.py); Playwright drives it
#                   through executable_path (`playwright install` and its downloads are never used)
#   docker-compose  `docker-compose config` checks docker-compose.yml (tests/unit/test_deploy.py);
#                   no Docker engine is needed for that
#   promtool        (package prometheus) checks deploy/prometheus*.yml and runs the rule tests
#   pgbouncer       PgBouncer in transaction mode in front of the test PostgreSQL
#                   (tests/integration/test_pgbouncer.py); the package's own service is not used
#
# A tool already on PATH is used as it is (Chromium may also be named by VECTORQL_TEST_CHROMIUM).
# Otherwise, as root with apt-get, the missing packages are installed (no recommends; their services
# are not started). Not root, or no apt-get: say so and carry on; the tests that need the tool then
# skip with the reason (or fail under VECTORQL_TEST_REQUIRE_BACKENDS=1, as in CI).
#
# Usage: scripts/ensure_test_tools.sh            (called by `make test`)
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

missing=()
if path="$(find_chromium)"; then
  echo "ensure_test_tools: using $path"
else
  missing+=(chromium)
fi
if command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1; then
  echo "ensure_test_tools: using $(command -v docker-compose || echo 'docker compose')"
else
  missing+=(docker-compose)
fi
if command -v promtool >/dev/null; then
  echo "ensure_test_tools: using $(command -v promtool)"
else
  missing+=(prometheus)
fi
if command -v pgbouncer >/dev/null || [[ -x /usr/sbin/pgbouncer ]]; then
  echo "ensure_test_tools: using $(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
else
  missing+=(pgbouncer)
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "ensure_test_tools: missing ${missing[*]} and cannot install them (needs root and" \
    "apt-get): the tests that use them will skip (install Debian's packages to run them)" >&2
  exit 0
fi

echo "ensure_test_tools: installing Debian's ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "ensure_test_tools: installed ${missing[*]}"
else
  echo "ensure_test_tools: apt-get could not install ${missing[*]}: their tests will skip" >&2
fi
exit 0
