"""The thread event log in Redis: any instance appends, any instance serves any thread's stream.

Keys (``P`` = key prefix, ``T`` = thread id), all expiring ``ttl_seconds`` after the thread's last write:
- ``P:tl:T``: a Redis Stream whose entry ids are ``<seq>-0``; fields ``m`` method, ``c`` channel,
  ``n`` namespace (JSON), ``d`` the stored event bytes. Capped with ``MAXLEN ~ max_events``.
- ``P:tl:T:meta``: hash ``seq`` (last number handed out), ``max`` (reserved ceiling), ``active`` (the
  run that began and has not ended), ``call`` (the last applied write, for idempotent retries).
- ``P:tl:T:runs``: hash run id -> seq of the run's first event (where a replay of that run starts).
- ``P:tl:T:deferred``: list of events held back while another run is active.

One Lua script applies every buffered op of one thread atomically (numbering, append, begin/end,
deferral), so the numbering and the stored order agree whichever instance writes. When the script
finds no counter (new thread, expired, Redis restarted) or the reserved ceiling too low, it says so
and the writer asks Postgres (``SeqStore``) before trying again.

Subscribers hold no connection while they wait: one ``SharedStreamReader`` per log blocks in one
``XREAD`` per lane over the subscribed threads (``redis_reader``); a read that fails is retried from each
subscriber's position, and a subscriber that waited through more than ``outage_seconds`` of
failures gets ``BrokerUnavailable``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from cogni_server.streaming.base import DEFAULT_OUTAGE_SECONDS
from cogni_server.streaming.redis_clients import command_client
from cogni_server.streaming.redis_reader import SharedStreamReader
from cogni_server.streaming.thread_log import (
    HOLD_SECONDS,
    SEQ_BLOCK,
    BufferedLog,
    LogClosed,
    SeqStore,
    StoredEvent,
    _Op,
    group_by_thread,
    log,
)

_BLOCK_MS = 5_000
_ROUNDS = 5  # (script load) + init + reserve + apply, with one spare

# KEYS: stream, meta, runs, deferred. ARGV: call, init, new_max, maxlen, ttl, hold_ms, nops, then per
# op: mode, run_id, n, then n x (method, channel, namespace, tail). Returns {1, seq} applied,
# {-1, 0} no counter (pass init), {-2, needed} ceiling too low (pass new_max >= needed), {-3, k} the
# first k ops applied, the next is a begin held back (another run is active and wrote < hold_ms ago).
_APPEND = r"""
local stream, meta, runs, deferred = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local call = ARGV[1]
local init, new_max, maxlen, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local hold_ms, nops = tonumber(ARGV[6]), tonumber(ARGV[7])
local skip = 0
local seq = redis.call('HGET', meta, 'seq')
if not seq then
  if init < 0 then return {-1, 0} end
  seq = init
  local top = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if top[1] then
    local top_seq = tonumber(string.match(top[1][1], '^(%d+)'))
    if top_seq > seq then seq = top_seq end
  end
  redis.call('HSET', meta, 'seq', string.format('%d', seq), 'max', string.format('%d', seq))
else
  seq = tonumber(seq)
  if redis.call('HGET', meta, 'call') == call then  -- a retry of a call whose reply was lost
    local partial = redis.call('HGET', meta, 'partial')
    if not partial then return {1, seq} end
    skip = tonumber(partial)
  end
end
local max = tonumber(redis.call('HGET', meta, 'max') or '0')
if new_max > max then
  max = new_max
  redis.call('HSET', meta, 'max', string.format('%d', max))
end
local ops, i, needed = {}, 8, redis.call('LLEN', deferred)
for o = 1, nops do
  local op = {mode = ARGV[i], run_id = ARGV[i + 1], n = tonumber(ARGV[i + 2]), at = i + 3}
  ops[o] = op
  needed = needed + op.n
  i = i + 3 + 4 * op.n
end
if seq + needed > max then return {-2, seq + needed} end
local active = redis.call('HGET', meta, 'active')
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local active_at = tonumber(redis.call('HGET', meta, 'active_at') or '0')
local function add(run_id, method, channel, ns, tail)
  seq = seq + 1
  local s = string.format('%d', seq)
  local data = '{"type":"event","event_id":"' .. s .. '","seq":' .. s .. ',' .. tail
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, s .. '-0', 'm', method, 'c', channel, 'n', ns, 'd', data)
  if run_id ~= '' then redis.call('HSETNX', runs, run_id, s) end
end
local function drain()
  local items = redis.call('LRANGE', deferred, 0, -1)
  redis.call('DEL', deferred)
  for _, item in ipairs(items) do
    local parts, pos = {}, 1
    for k = 1, 4 do
      local z = string.find(item, '\0', pos, true)
      parts[k] = string.sub(item, pos, z - 1)
      pos = z + 1
    end
    add(parts[1], parts[2], parts[3], parts[4], string.sub(item, pos))
  end
end
local applied = 0
for o, op in ipairs(ops) do
  if o <= skip then
    applied = o
  elseif op.mode == 'begin' and active and active ~= op.run_id and now - active_at < hold_ms then
    redis.call('HSET', meta, 'seq', string.format('%d', seq), 'call', call, 'partial', applied)
    for k = 1, 4 do redis.call('EXPIRE', KEYS[k], ttl) end
    return {-3, applied, active}
  elseif op.mode == 'defer' and active then
    for e = 0, op.n - 1 do
      local b = op.at + 4 * e
      local item = op.run_id .. '\0' .. ARGV[b] .. '\0' .. ARGV[b + 1] .. '\0' .. ARGV[b + 2]
      redis.call('RPUSH', deferred, item .. '\0' .. ARGV[b + 3])
    end
  else
    if op.mode == 'begin' then
      if active ~= op.run_id then drain() end
      active = op.run_id
      redis.call('HSET', meta, 'active', active)
    end
    for e = 0, op.n - 1 do
      local b = op.at + 4 * e
      add(op.run_id, ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3])
    end
    if active and active == op.run_id then
      redis.call('HSET', meta, 'active_at', string.format('%d', now))
    end
    if op.mode == 'end' and active == op.run_id then
      active = false
      redis.call('HDEL', meta, 'active')
      drain()
    end
  end
  applied = o
end
redis.call('HSET', meta, 'seq', string.format('%d', seq), 'call', call)
redis.call('HDEL', meta, 'partial')
for k = 1, 4 do redis.call('EXPIRE', KEYS[k], ttl) end
return {1, seq}
"""


class RedisThreadLog(BufferedLog):
    """ThreadLog on Redis Streams (see the module docstring for the key layout)."""

    def __init__(
        self,
        client: aioredis.Redis,
        store: SeqStore,
        *,
        key_prefix: str,
        max_events: int,
        ttl_seconds: float,
        block_ms: int = _BLOCK_MS,
        hold_seconds: float = HOLD_SECONDS,
        outage_seconds: float = DEFAULT_OUTAGE_SECONDS,
    ) -> None:
        super().__init__(store, max_events=max_events, ttl_seconds=ttl_seconds, hold_seconds=hold_seconds)
        self._redis = client
        self.key_prefix = key_prefix
        self.block_ms = block_ms
        self._shared = SharedStreamReader(
            client,
            key_prefix=key_prefix,
            block_ms=block_ms,
            outage_seconds=outage_seconds,
            closed_error=lambda: LogClosed("the thread event log is shutting down"),
        )
        self._ttl = max(1, int(ttl_seconds))
        self._sha: str | None = None  # the script's sha once loaded (EVALSHA saves sending it each time)

    @classmethod
    def from_url(
        cls,
        url: str,
        store: SeqStore,
        *,
        key_prefix: str,
        **kwargs: Any,
    ) -> RedisThreadLog:
        client = command_client(url, key_prefix=key_prefix)
        return cls(client, store, key_prefix=key_prefix, **kwargs)

    def keys(self, thread_id: str) -> list[str]:
        base = f"{self.key_prefix}:tl:{thread_id}"
        return [base, f"{base}:meta", f"{base}:runs", f"{base}:deferred"]

    # -- writing -----------------------------------------------------------------------------
    async def _write(self, ops: list[_Op]) -> None:
        groups = group_by_thread(ops)
        # a retry of the same ops sends the same call id: the script skips a call it already applied
        calls = {tid: {"call": _call_id(group), "init": -1, "max": -1} for tid, group in groups.items()}
        for _ in range(_ROUNDS):
            if not calls:
                return
            if self._sha is None:
                self._sha = _text(await self._redis.script_load(_APPEND))
            pipe = self._redis.pipeline(transaction=False)
            order = list(calls)
            for tid in order:
                pipe.evalsha(self._sha, 4, *self.keys(tid), *self._args(groups[tid], calls[tid]))
            results = await pipe.execute(raise_on_error=False)
            for tid, result in zip(order, results, strict=True):
                if isinstance(result, NoScriptError):  # Redis restarted (or flushed its scripts)
                    self._sha = None
                    continue
                if isinstance(result, Exception):
                    raise result
                status, value = int(result[0]), int(result[1])
                if status == 1:
                    self._done(ops, groups[tid], calls, tid)
                elif status == -3:  # the first `value` ops are in; a begin waits for the active run's end
                    for op in groups[tid][:value]:
                        ops.remove(op)
                    rest = groups[tid][value:]
                    active = _text(result[2])
                    ahead = [op for op in rest if op.run_id == active or op.mode == "defer"]
                    if not ahead:  # nothing of the active run is here yet: try again shortly
                        del calls[tid]
                        continue
                    groups[tid] = ahead + [op for op in rest if op not in ahead]
                    calls[tid] = {"call": _call_id(groups[tid]), "init": -1, "max": -1}
                elif status == -1:  # no counter: start above the durable ceiling, with a fresh block
                    ceiling = await self.store.reserve(tid, 0, SEQ_BLOCK)
                    if ceiling is None:
                        log.debug("thread %s is gone: its events are dropped", tid)
                        self._done(ops, groups[tid], calls, tid)
                    else:
                        calls[tid]["init"], calls[tid]["max"] = ceiling - SEQ_BLOCK, ceiling
                else:
                    reserved = await self.store.reserve(tid, value, SEQ_BLOCK)
                    if reserved is None:
                        log.debug("thread %s is gone: its events are dropped", tid)
                        self._done(ops, groups[tid], calls, tid)
                    else:
                        calls[tid]["max"] = reserved
        if calls:
            raise RuntimeError(f"thread log: could not number events for {sorted(calls)}")

    @staticmethod
    def _done(ops: list[_Op], group: list[_Op], calls: dict[str, Any], tid: str) -> None:
        for op in group:
            ops.remove(op)
        del calls[tid]

    def _args(self, group: list[_Op], call: dict[str, Any]) -> list[Any]:
        hold_ms = int(self.hold_seconds * 1000)
        args: list[Any] = [call["call"], call["init"], call["max"], self.max_events, self._ttl, hold_ms, len(group)]
        for op in group:
            args += [op.mode, op.run_id or "", len(op.events)]
            for event in op.events:
                args += [event.method, event.channel, orjson.dumps(list(event.namespace)), event.tail]
        return args

    # -- reading -----------------------------------------------------------------------------
    async def high_water(self, thread_id: str) -> int:
        await self.flush()
        seq = await self._redis.hget(self.keys(thread_id)[1], "seq")
        if seq is not None:
            return int(seq)
        return await self.store.ceiling(thread_id) or 0

    async def run_start(self, thread_id: str, run_id: str) -> int | None:
        seq = await self._redis.hget(self.keys(thread_id)[2], run_id)
        return None if seq is None else int(seq)

    async def active_run(self, thread_id: str) -> str | None:
        active = await self._redis.hget(self.keys(thread_id)[1], "active")
        return None if not active else _text(active)

    async def read_range(self, thread_id: str, after: int, until: int | None = None) -> list[StoredEvent]:
        end = "+" if until is None else f"{until}-0"
        entries = await self._redis.xrange(self.keys(thread_id)[0], f"({after}-0", end)
        return [_stored(entry_id, fields) for entry_id, fields in entries]

    def subscribe(self, thread_id: str, after: int) -> AsyncIterator[StoredEvent]:
        return self._read(self.keys(thread_id)[0], after)

    async def _read(self, key: str, after: int) -> AsyncIterator[StoredEvent]:
        if self.closed:
            raise LogClosed("the thread event log is shutting down")
        async with contextlib.aclosing(self._shared.entries(key, f"{after}-0")) as entries:
            async for entry_id, fields in entries:
                yield _stored(entry_id, fields)

    async def forget(self, thread_id: str) -> None:
        await self._redis.delete(*self.keys(thread_id))

    async def close(self) -> None:
        if self.closed:
            return
        await self._stop_flusher()
        await self._shared.close()  # subscribers get LogClosed
        await self._redis.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose


def _call_id(group: list[_Op]) -> str:
    """The same ops in the same order give the same id (a retry after a lost reply is applied once)."""
    return f"{group[0].call}+{len(group)}+{group[-1].call}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _stored(entry_id: Any, fields: dict[bytes, bytes]) -> StoredEvent:
    seq = int(_text(entry_id).split("-", 1)[0])
    namespace = tuple(orjson.loads(fields[b"n"]))
    return StoredEvent(seq, _text(fields[b"m"]), _text(fields[b"c"]), namespace, fields[b"d"])
