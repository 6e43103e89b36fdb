"""The room patterns of the token policy (`CallerRule.rooms`): which room names a pattern
grants to a participant identity.

A pattern is shell-style, as `fnmatch.fnmatchcase` reads it (`*`, `?`, `[...]`, case
sensitive). `{identity}`, at most once in a pattern, stands for the participant identity,
taken literally (glob characters in an identity are no wildcards), and names one identity
only: a room name is read once against the pattern, the part before `{identity}` as short
as the pattern allows and `{identity}` as long as it allows (the part after it gets what is
left). The room is granted when that reading's `{identity}` is exactly the caller's
identity. So one pattern never grants a room to two identities: under `user-{identity}-*`
the room `user-alice-bob-private` is `alice-bob`'s (`*` = `private`), not `alice`'s, and
`alice`'s rooms are `user-alice-<name>` where `<name>` has no `-`.

`check_room_pattern` refuses, when the policy is read, a second `{identity}` and a
`{identity}` right next to `*`, `?`, `[` or `]`: a wildcard there would be read as part of
the identity. A literal separator goes between them, e.g. `user-{identity}-*`.
"""

from __future__ import annotations

import fnmatch
import glob
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator

PLACEHOLDER = "{identity}"


def room_allowed(room: str, identity: str, patterns: Iterable[str]) -> bool:
    """True when one of `patterns` grants `room` to `identity` (see the module doc)."""
    return any(_grants(pattern, room, identity) for pattern in patterns)


def _grants(pattern: str, room: str, identity: str) -> bool:
    before, placeholder, after = pattern.partition(PLACEHOLDER)
    if not placeholder:
        return fnmatch.fnmatchcase(room, pattern)
    if not fnmatch.fnmatchcase(room, before + glob.escape(identity) + after):
        return False  # no reading gives this identity (the common refusal: one match)
    # The reading: the shortest start that `before` matches, the longest end that `after`
    # matches; `{identity}` is what lies between.
    starts = (i for i in range(len(room) + 1) if fnmatch.fnmatchcase(room[:i], before))
    ends = (j for j in range(len(room), -1, -1) if fnmatch.fnmatchcase(room[j:], after))
    start, end = next(starts, None), next(ends, None)
    return start is not None and end is not None and room[start:end] == identity


def check_room_pattern(pattern: str) -> str:
    """`pattern`, or `ValueError` when it holds `{identity}` twice, or right next to `*`,
    `?`, `[` or `]`."""
    before, placeholder, after = pattern.partition(PLACEHOLDER)
    if not placeholder:
        return pattern
    if PLACEHOLDER in after:
        raise ValueError(f"room pattern {pattern!r}: {PLACEHOLDER} may appear once only")
    if before.endswith(("*", "?", "[", "]")) or after.startswith(("*", "?", "[", "]")):
        raise ValueError(
            f"room pattern {pattern!r}: a wildcard right next to {PLACEHOLDER} would be read "
            f"as part of the identity; put a separator between them, e.g. 'user-{PLACEHOLDER}-*'"
        )
    return pattern


#: A room pattern in a policy, checked by `check_room_pattern` when the policy is read.
RoomPattern = Annotated[str, AfterValidator(check_room_pattern)]
