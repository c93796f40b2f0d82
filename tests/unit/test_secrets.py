"""Secrets never shown (adclick.redact), and password files read as libpq reads them."""

from __future__ import annotations

import logging
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from adclick.db.passfile import passfile_entries, password_from, pgpass_line, read_passfile
from adclick.redact import MASK, MaskSecrets, mask_secrets

# What a password in a URL may hold (the rest is percent-encoded), and in a key=value
# connection string (quoted; \' and \\ escaped).
URL_PASSWORD = st.text(
    st.characters(codec="ascii", categories=["L", "N"], include_characters="-._~%!$&'()*+,;="),
    min_size=6,
    max_size=40,
).filter(lambda p: p.strip("-._~") != "")
ANY_TEXT = st.text(max_size=40)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    password=URL_PASSWORD,
    user=st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
    before=ANY_TEXT,
    after=ANY_TEXT,
)
def test_a_url_password_is_masked_wherever_the_url_is(
    password: str, user: str, before: str, after: str
) -> None:
    url = f"postgresql://{user}:{password}@db.example:5432/adclick?sslmode=require"
    shown = mask_secrets(f"{before} database at {url} is not reachable: {after}")
    assert f"postgresql://{user}:{MASK}@db.example:5432/adclick" in shown
    assert f":{password}@" not in shown


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    password=st.text(
        st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=6, max_size=40
    )
)
def test_a_quoted_password_parameter_is_masked(password: str) -> None:
    quoted = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    shown = mask_secrets(f"host=db password={quoted} user=ads dbname=adclick")
    assert shown == f"host=db password={MASK} user=ads dbname=adclick"


def test_log_records_and_their_tracebacks_are_masked() -> None:
    record = logging.LogRecord(
        "adclick",
        logging.WARNING,
        __file__,
        1,
        "cannot connect to %s",
        ("postgresql://u:hunter2hunter2@db/x",),
        None,
    )
    try:
        raise RuntimeError("postgresql://u:hunter2hunter2@db/x refused")
    except RuntimeError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert MaskSecrets().filter(record)
    text = logging.Formatter().format(record)
    assert "hunter2" not in text and MASK in text and "RuntimeError" in text


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    entries=st.lists(
        st.tuples(
            st.sampled_from(["127.0.0.1", "localhost", "*"]),
            st.text(
                st.characters(codec="utf-8", exclude_characters="\n\r", exclude_categories=["Cs"]),
                min_size=1,
                max_size=12,
            ),
            st.text(
                st.characters(codec="utf-8", exclude_characters="\n\r", exclude_categories=["Cs"]),
                min_size=1,
                max_size=20,
            ),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_a_password_file_reads_back_what_was_written(
    tmp_path_factory: object, entries: list[tuple[str, str, str]]
) -> None:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "pgpass"
    path.write_text("# comment\n\n" + "".join(pgpass_line(h, u, p) for h, u, p in entries))
    assert [(h, u, p) for h, _, _, u, p in passfile_entries(path)] == entries
    first: dict[str, str] = {}
    for _host, user, password in entries:
        first.setdefault(user, password)
    assert read_passfile(path) == first
    host, user, password = entries[0]
    wanted_host = "127.0.0.1" if host == "*" else host
    assert password_from(path, wanted_host, "5432", "adclick", user) == password
    assert password_from(path, "db.example", "5432", "adclick", user) in (
        None,
        *[p for h, u, p in entries if h == "*" and u == user][:1],
    )
