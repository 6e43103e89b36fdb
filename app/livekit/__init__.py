"""LiveKit itself: the gateway over livekit-api (the only importer of its service classes),
the table of the LiveKit services served, and LiveKit's JWTs (AccessTokens signed and
verified, webhooks checked against the keyring)."""
