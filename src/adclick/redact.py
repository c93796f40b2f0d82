"""Secrets never shown: passwords in database URLs, connection strings and messages.

Every message that may hold a URL or the text of a failed connection passes through
``mask_secrets`` before a person or a log sees it: adclick's own errors, the API's
readiness problems, ``adclick config show`` and every log record (``adclick.logs``).
"""

from __future__ import annotations

import logging
import re

MASK = "********"
# The password of a URL (scheme://user:password@host; the last @ before the path ends it).
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^/?#\s]*@")
# A password=... parameter: of a URL query (&password=) or of a key=value connection
# string, quoted ('a b', with \' inside) or not.
_PARAM_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``text`` with every password of a URL or connection string replaced by ********."""
    text = _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)
    return _PARAM_PASSWORD.sub(rf"\g<1>{MASK}", text)


class MaskSecrets(logging.Filter):
    """A handler filter that masks secrets in a record's message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info:
            # Formatted once here, masked, and passed on as the text the formatters use.
            record.exc_text = mask_secrets(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
