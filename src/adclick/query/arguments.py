"""What a string argument may hold: an ad id or an attribute value, as events carry them.

An event's ids and attribute values are at most ``MAX_ID_LENGTH`` characters and hold no
control characters (docs/events.md), so a longer value, or one with a control character
or a lone surrogate, can match no click: it is refused with its own code rather than
sent to the database (which cannot even store a NUL).
"""

from __future__ import annotations

import re

from adclick.events.parse import CONTROL_CHARACTERS, MAX_ID_LENGTH
from adclick.query.errors import ErrorCode, QueryError

# What an event refuses, and lone surrogates (JSON "\ud800"), which are not text at all.
_NOT_TEXT = re.compile(f"[{CONTROL_CHARACTERS}\ud800-\udfff]")


def check_value(value: str, what: str, code: ErrorCode) -> None:
    """Refuse ``value`` (named ``what`` in the message) if no event could carry it.

    Too long is ARGUMENT_TOO_LONG; a control character or lone surrogate is ``code``.
    """
    if len(value) > MAX_ID_LENGTH:
        raise QueryError(
            ErrorCode.ARGUMENT_TOO_LONG,
            f"{what} has {len(value):,} characters; ids and attribute values have at most "
            f"{MAX_ID_LENGTH}",
        )
    found = _NOT_TEXT.search(value)
    if found is not None:
        character = ord(found.group())
        kind = "a lone surrogate" if 0xD800 <= character <= 0xDFFF else "a control character"
        raise QueryError(code, f"{what} holds {kind} (U+{character:04X}), which no click can carry")
