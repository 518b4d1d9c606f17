#!/usr/bin/env bash
# Installs what the project needs on a bare machine of this kind and starts local services.
# Sourced by scripts/test.sh and scripts/demo.sh. Idempotent and quiet when all is there.
set -euo pipefail

if ! command -v uv >/dev/null 2>&1; then
  echo "[ensure-env] installing uv from PyPI"
  python3 -m pip install --quiet 'uv==0.13.8'
fi

if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "[ensure-env] starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi

# redis-server: the machine's broker below, and the chaos campaign's own throwaway instance (bench/chaos).
if ! command -v redis-server >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "[ensure-env] installing redis-server"
  apt-get install -y -qq redis-server >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
fi

if command -v redis-cli >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "[ensure-env] starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

# The operator console's browser tests drive Debian's Chromium (never a browser downloaded by Playwright).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "[ensure-env] installing chromium (Debian package) for the console's browser tests"
  (apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }) \
    || echo "[ensure-env] could not install chromium; the console's browser tests will fail"
fi

uv sync --frozen --quiet
