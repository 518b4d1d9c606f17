#!/usr/bin/env bash
# The main job: the Agent Server on embedded defaults with its demo (see scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-env.sh
PYTHONPATH=. exec uv run --frozen python scripts/demo.py "$@"
