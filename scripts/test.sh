#!/usr/bin/env bash
# Install everything the tests need, then run lint, the import contracts and the whole suite.
# Usage: scripts/test.sh [pytest args…]   (the README's second quick-start command; .ci/run runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
VENV="${MAILBRIDGE_VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
export PATH="$VENV/bin:$PATH"
echo "== ruff"
ruff check .
echo "== import contracts"
lint-imports
echo "== pytest"
# In CI a test server that cannot start is a failure, not a skip (and conftest.py requires
# the ../shared/corpus mail there).
if [ "${CI:-}" = "true" ]; then export MAILBRIDGE_REQUIRE_SERVERS=1; fi
exec python -m pytest "$@"
