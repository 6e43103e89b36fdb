"""Request ids: the `X-Request-ID` header, which ids a caller sends are echoed
(`valid_request_id`), and the generator of new ones (`new_request_id`).
`app.http.middleware.RequestContextMiddleware` puts one on every request and response.
"""

from __future__ import annotations

import os
import random
import uuid

REQUEST_ID_HEADER = "X-Request-ID"
#: Longest `X-Request-ID` echoed (contract: 1 to 128 visible ASCII characters).
MAX_REQUEST_ID_LENGTH = 128

#: The generator of request ids: an instance of its own, so that no other code's
#: `random.seed` (a library's, a test framework's) can make ids repeat; seeded from the
#: system's randomness when created, and again in a forked child.
_REQUEST_IDS = random.Random()  # noqa: S311 - not a secret, see new_request_id
os.register_at_fork(after_in_child=_REQUEST_IDS.seed)


def new_request_id() -> str:
    """A fresh request id: a random (version 4) UUID, e.g. `0b6c...-4...-...`.

    Its 122 random bits come from `_REQUEST_IDS`, a `random.Random` generator, not from
    `os.urandom`: a request id is no secret (a caller may send any id it likes, and it is
    echoed), and the system call per request that `uuid.uuid4()` makes cost the token route
    about 2% of its requests per second (bench/README.md)."""
    return str(uuid.UUID(int=_REQUEST_IDS.getrandbits(128), version=4))


def valid_request_id(given: bytes) -> bool:
    """True for 1 to `MAX_REQUEST_ID_LENGTH` visible ASCII characters (0x21 to 0x7E)."""
    return 0 < len(given) <= MAX_REQUEST_ID_LENGTH and all(0x21 <= b <= 0x7E for b in given)
