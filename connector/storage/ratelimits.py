"""Where the CRM rate-limit buckets live: Redis when the queue is Redis, the database otherwise.

Both run :func:`connector.kernel.ratelimit.take` on one bucket at a time, atomically across every
process and machine using the same store: the database under a row lock, Redis in a script
(Redis runs one script at a time) on Redis's own clock, so the workers' clocks need not agree.
"""

from __future__ import annotations

from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from connector.kernel import clock
from connector.kernel.ratelimit import Bucket, Budget, hold, observe, take
from connector.storage.db import Database
from connector.storage.models import RateLimitBucket

#: Redis keys: this prefix and the bucket's key. A bucket unused for a day is forgotten.
REDIS_PREFIX = "textback:ratelimit:"
REDIS_TTL_SECONDS = 86_400


class DbRateLimiter:
    """Buckets in the ``rate_limit_buckets`` table (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        insert = sqlite_insert if db.url.startswith("sqlite") else pg_insert
        self._insert = insert(RateLimitBucket)

    def __repr__(self) -> str:
        return f"DbRateLimiter({self.db!r})"

    def _update(self, key: str, budget: Budget, change: Any) -> Any:
        """Apply ``change(bucket, now) -> (bucket, answer)`` to ``key``'s row under its lock."""
        with self.db.session() as s:
            now = clock.timestamp()
            # The insert takes SQLite's write lock at once (so the read below is the latest);
            # on PostgreSQL the row lock of the select does the same for this one key.
            s.execute(self._insert.values(key=key, tokens=budget.capacity, updated=now, held=0.0)
                      .on_conflict_do_nothing(index_elements=["key"]))
            row = s.scalars(select(RateLimitBucket).where(RateLimitBucket.key == key)
                            .with_for_update()).one()
            bucket, answer = change(Bucket(row.tokens, row.updated, row.held), now)
            row.tokens, row.updated, row.held = bucket.tokens, bucket.updated, bucket.held
            return answer

    def take(self, key: str, budget: Budget, cost: float = 1.0) -> float:
        """See :meth:`connector.kernel.ratelimit.RateLimiter.take`."""
        return float(self._update(key, budget, lambda b, now: take(b, budget, cost, now)))

    def hold(self, key: str, budget: Budget, seconds: float) -> None:
        """See :meth:`connector.kernel.ratelimit.RateLimiter.hold`."""
        self._update(key, budget, lambda b, now: (hold(b, budget, seconds, now), None))

    def observe(self, key: str, budget: Budget, available: float) -> None:
        """See :meth:`connector.kernel.ratelimit.RateLimiter.observe`."""
        self._update(key, budget, lambda b, now: (observe(b, budget, available, now), None))


# The steps of connector.kernel.ratelimit.take / hold / observe, on Redis's clock. ARGV: the
# operation, the bucket's capacity and refill rate, then the cost, the seconds to hold or the
# units available; the answer is the wait in seconds (as text: Redis truncates numbers).
_SCRIPT = """
local capacity, rate, arg = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local h = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'held')
local tokens, held = capacity, 0
if h[1] then
  tokens = math.min(capacity, tonumber(h[1]) + math.max(0, now - tonumber(h[2])) * rate)
  held = tonumber(h[3])
end
local wait = 0
if ARGV[1] == 'take' then
  local cost = math.min(arg, capacity)
  if held > now then wait = held - now
  elseif tokens >= cost then tokens = tokens - cost
  else wait = (cost - tokens) / rate end
elseif ARGV[1] == 'hold' then
  tokens, held = 0, math.max(held, now + arg)
else
  tokens = math.min(tokens, math.max(0, arg))
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now),
           'held', tostring(held))
redis.call('EXPIRE', KEYS[1], ARGV[5])
return tostring(wait)
"""


class RedisRateLimiter:
    """Buckets in Redis hashes, changed by one script."""

    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url)
        self._script = self._redis.register_script(_SCRIPT)

    def __repr__(self) -> str:
        return "RedisRateLimiter()"

    def _run(self, op: str, key: str, budget: Budget, arg: float) -> float:
        answer = self._script(keys=[REDIS_PREFIX + key],
                              args=[op, repr(budget.capacity), repr(budget.rate), repr(arg),
                                    REDIS_TTL_SECONDS])
        return float(answer)

    def take(self, key: str, budget: Budget, cost: float = 1.0) -> float:
        """See :meth:`connector.kernel.ratelimit.RateLimiter.take`."""
        return self._run("take", key, budget, cost)

    def hold(self, key: str, budget: Budget, seconds: float) -> None:
        """See :meth:`connector.kernel.ratelimit.RateLimiter.hold`."""
        self._run("hold", key, budget, seconds)

    def observe(self, key: str, budget: Budget, available: float) -> None:
        """See :meth:`connector.kernel.ratelimit.RateLimiter.observe`."""
        self._run("observe", key, budget, available)

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()
