"""File names as the operating system gives them, in JSON and in messages.

A POSIX file name is bytes. Python hands it over as text in which each byte that is not
UTF-8 stands as a lone surrogate (``surrogateescape``): ``b"app.log.\\xff"`` is
``"app.log.\\udcff"``. Such text has no UTF-8 form, so a JSON writer refuses it (orjson:
``str is not valid UTF-8``) and a JSON reader could not take it back. So a name leaves the
process in one of two forms:

- for people (dead letters, log and error messages): :func:`display_name`, the name's bytes
  as UTF-8 with each other byte written ``\\xff`` (``backslashreplace``);
- where the exact name must come back (the tail's state file) or be found again (the dead
  letter's ``file_base64``): :func:`name_fields`, which adds the name's bytes in base64 when
  the name is not UTF-8, and :func:`name_from_fields`, which reads either form back.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any

Name = str | os.PathLike[str]


def _os_bytes(name: Name) -> bytes:
    text = os.fspath(name)
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:  # a surrogate no file system gave: made in code, not found
        return text.encode("utf-8", "surrogatepass")


def display_name(name: Name) -> str:
    """The name for people: its UTF-8 text, each byte that is not UTF-8 written ``\\xNN``."""
    return _os_bytes(name).decode("utf-8", "backslashreplace")


def name_fields(field: str, name: Name) -> dict[str, str]:
    """``{field: <display name>}``, and ``{field}_base64`` with the name's exact bytes when
    they are not UTF-8 (the display form is then ambiguous: ``\\xff`` may be four bytes)."""
    raw = _os_bytes(name)
    try:
        return {field: raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {
            field: raw.decode("utf-8", "backslashreplace"),
            f"{field}_base64": base64.b64encode(raw).decode("ascii"),
        }


def name_from_fields(data: Mapping[str, Any], field: str) -> str:
    """The name :func:`name_fields` wrote (or a plain ``field`` alone), as the OS's text;
    ValueError if the base64 is not base64."""
    encoded = data.get(f"{field}_base64")
    if encoded is None:
        return str(data[field])
    try:
        return os.fsdecode(base64.b64decode(str(encoded), validate=True))
    except binascii.Error as exc:
        raise ValueError(f"{field}_base64 is not base64 ({exc})") from None
