#!/usr/bin/env bash
# The test command: installs what it needs, starts Postgres/Redis if stopped, then runs the
# static checks (ruff, mypy, import-linter, Dockerfile lint) and the whole pytest suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k ledger -x`. The suite runs in
# COGNI_TEST_WORKERS pytest-xdist processes (default 2; 0 runs it in this process), a test file per
# process at a time (`--dist loadfile`: a file's module fixtures, such as its server, are built once).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-env.sh

echo "== ruff"; uv run --frozen ruff check .
echo "== mypy"; uv run --frozen mypy
echo "== import-linter"; uv run --frozen lint-imports
echo "== pytest"; uv run --frozen pytest -n "${COGNI_TEST_WORKERS:-2}" --dist loadfile --durations=15 "$@"
