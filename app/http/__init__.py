"""The HTTP assembly around the routers: the ASGI layers before any route, problem+json
rendering, the FastAPI dependencies, `Idempotency-Key` and the token route's rate limits.
HTTP types stop here and in `routers/`."""
