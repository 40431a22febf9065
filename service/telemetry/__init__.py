"""Logs, traces and the middleware that writes them: one JSON line per event, one
server span per request, exported over OTLP/HTTP."""
