#!/usr/bin/env bash
# The test command: installs what it needs, starts Postgres/Redis if stopped, then runs the
# static checks (ruff, mypy, import-linter, Dockerfile lint) and the whole pytest suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k ledger -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-env.sh

echo "== ruff"; uv run --frozen ruff check .
echo "== mypy"; uv run --frozen mypy
echo "== import-linter"; uv run --frozen lint-imports
echo "== pytest"; uv run --frozen pytest "$@"
