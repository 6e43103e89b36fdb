"""Request and response models: hand-written ones for this service's own shapes, and
models derived from LiveKit's protobuf messages by `schemas.bridge`."""
