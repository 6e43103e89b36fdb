"""One APIRouter per LiveKit service; thin: parse, call app/, shape the response."""
