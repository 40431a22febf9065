"""The HTTP API: routers, health probes, authentication, dependencies, error handlers."""
