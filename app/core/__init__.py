"""What every part of the service stands on: the error family, logging, metrics,
compact JSON, cached probes, and the local processes of development and tests."""
