"""LiveKit's webhook events once verified: ingestion and reading back, the streams of new
events, and what is derived from them (sessions)."""
