"""LiveKit's webhook events once verified: ingestion and reading back, the streams of new
events, what is derived from them (sessions), and their relay to the app's webhook
endpoints."""
