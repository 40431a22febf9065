"""Where the data lives: the SQL database (SQLAlchemy async) and the Redis cache."""
