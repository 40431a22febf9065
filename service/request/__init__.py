"""What every layer knows about the request being served: its context variables, the
X-Request-ID rules and the shape of an error answer. Imports nothing from the service."""
