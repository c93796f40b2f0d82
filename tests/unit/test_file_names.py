"""File names of any bytes in JSON and messages: the state file, dead letters, warnings."""

from __future__ import annotations

import base64
import os

import orjson
from hypothesis import given
from hypothesis import strategies as st

from adclick.collect.file_names import display_name, name_fields, name_from_fields
from adclick.collect.sender import _dead_letter_json
from adclick.events.dead_letter import dead_letter

# Any name a POSIX file system allows: every byte but "/" and NUL, in any order.
os_names = st.binary(min_size=1, max_size=40).filter(
    lambda raw: b"/" not in raw and b"\0" not in raw
)


@given(raw=os_names)
def test_any_os_name_goes_through_json_and_comes_back_exactly(raw: bytes) -> None:
    name = "/var/log/" + os.fsdecode(raw)  # as os.scandir and sys.argv give it
    data = orjson.loads(orjson.dumps(name_fields("file", name)))
    assert name_from_fields(data, "file") == name
    assert os.fsencode(name_from_fields(data, "file")) == b"/var/log/" + raw


@given(raw=os_names)
def test_the_readable_form_is_the_utf8_name_or_its_bytes_escaped(raw: bytes) -> None:
    fields = name_fields("file", os.fsdecode(raw))
    display = display_name(os.fsdecode(raw))
    assert fields["file"] == display
    display.encode("utf-8")  # any writer takes it
    try:
        assert display == raw.decode("utf-8")
        assert "file_base64" not in fields  # a UTF-8 name is as it was
    except UnicodeDecodeError:
        assert display == raw.decode("utf-8", "backslashreplace")
        assert base64.b64decode(fields["file_base64"]) == raw


def test_an_escaped_name_and_a_name_spelling_the_escape_stay_apart() -> None:
    byte, spelled = os.fsdecode(b"app.log.\xff"), "app.log.\\xff"
    assert display_name(byte) == display_name(spelled) == "app.log.\\xff"
    assert name_from_fields(name_fields("path", byte), "path") == byte
    assert name_from_fields(name_fields("path", spelled), "path") == spelled


def test_a_dead_letter_with_a_lone_surrogate_left_in_it_is_still_sent() -> None:
    # The collectors escape names themselves; the sender's last guard keeps any other
    # text of the kind from failing the collector.
    record = dead_letter("malformed", "x", "tail", b"line", file=os.fsdecode(b"a\xff.log"))
    assert orjson.loads(_dead_letter_json(record))["file"] == "a\\xff.log"
