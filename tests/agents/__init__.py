"""A real LiveKit agent worker for the dispatch tests, run from its own venv."""
