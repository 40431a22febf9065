"""`make bench`: the cost of full observability, start-up and shutdown times, measured
side by side on the real Gunicorn command (see bench/README.md)."""
