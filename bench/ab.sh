#!/usr/bin/env bash
# Same-run A/B of two checkouts of this repository (each with its own `uv sync`ed .venv): the trivial-run
# median through the official client and the server's CPU per run, three alternating rounds.
#   bash bench/ab.sh /path/to/old-checkout /path/to/new-checkout [runs]
# AB_ENV_OLD / AB_ENV_NEW add environment variables to one side (e.g. AB_ENV_NEW=COGNI_EVENT_LOOP=asyncio with
# the same checkout twice compares two settings).
# Each server runs on its own fresh database (dropped at the end), in-memory broker, auth off.
# AB_ONLY="sequential concurrent tokens" measures those too (default: sequential); the bench's whole
# row is printed (median, p99, failures, runs/s @32, tok/s, stream tok/s, ttft).
set -euo pipefail
OLD=$(cd "$1" && pwd); NEW=$(cd "$2" && pwd); RUNS=${3:-200}
cd "$(dirname "$0")/.."
PSQL=(psql -h 127.0.0.1 -U postgres -q)
declare -A PID PORT=([old]=18101 [new]=18102) DIR=([old]=$OLD [new]=$NEW)
cleanup() { for n in old new; do [ -n "${PID[$n]:-}" ] && kill "${PID[$n]}" 2>/dev/null || true;
  "${PSQL[@]}" -c "DROP DATABASE IF EXISTS ab_$n WITH (FORCE)" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
for n in old new; do
  "${PSQL[@]}" -c "DROP DATABASE IF EXISTS ab_$n" -c "CREATE DATABASE ab_$n" >/dev/null
  data=$(mktemp -d)
  extra=AB_ENV_${n^^}; read -r -a extra_env <<<"${!extra:-}"
  (cd "${DIR[$n]}" && exec env "${extra_env[@]}" COGNI_AUTH_MODE=none COGNI_LOG_LEVEL=warning LANGSMITH_TRACING=false \
    COGNI_DATA_DIR="$data" LANGGRAPH_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/ab_$n" \
    .venv/bin/cogni-server serve --config bench/graphs/langgraph.json --host 127.0.0.1 --port "${PORT[$n]}" \
    >"$data/server.log" 2>&1) &
  PID[$n]=$!
done
for n in old new; do
  for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:${PORT[$n]}/ok" >/dev/null && break; sleep 0.5; done
done
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }  # user + system clock ticks (1/100 s) of the server
for round in 1 2 3; do for n in old new; do
  a=$(cpu "${PID[$n]}")
  only=(); for m in ${AB_ONLY:-sequential}; do only+=(--only "$m"); done
  row=$(uv run --frozen python -m bench --no-ours --peer "x=http://127.0.0.1:${PORT[$n]}" "${only[@]}" \
    --runs "$RUNS" --warmup 20 2>&1 | grep -E "^\| x " | head -1)
  b=$(cpu "${PID[$n]}")
  median=$(echo "$row" | cut -d'|' -f3)
  cpu_line=""; [ "${AB_ONLY:-sequential}" = sequential ] && \
    cpu_line=" server_cpu_ms_per_run=$(echo "scale=2; ($b-$a)*10/($RUNS+20)" | bc)"
  echo "round $round $n median_ms=$median$cpu_line row:$row"
done; done
