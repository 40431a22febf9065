"""Where the data comes from: the SQL database (SQLAlchemy async), the Redis cache, and
the downstream service (httpx)."""
