"""Throwaway local servers shared by the test suites and the benchmarks: PostgreSQL and
Redis in temporary folders, the service's real Gunicorn command, an OTLP/HTTP receiver.
Plain Python, no pytest: a missing binary raises MissingPrerequisite, which the tests
turn into a failure under CI=true and a skip elsewhere."""
