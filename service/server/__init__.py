"""The HTTP server around the app: the Gunicorn worker that drains before it stops, the
shutdown state and its middleware, and the limits on request heads and bodies."""
