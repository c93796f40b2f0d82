"""``adclick verify``: are the stored counts exactly a loadgen truth file?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adclick.cli.app import app
from adclick.loadgen.truth import read_truth
from adclick.loadgen.verify import compare, expected_rows
from adclick.settings import get_settings

SHOWN = 20


@app.command()
def verify(
    truth: Annotated[Path, typer.Option(help="Truth file of `adclick loadgen --truth`.")],
) -> None:
    """Compare clicks_1m, clicks_1h and clicks_1m_by_country with a truth file.

    Prints every differing row (the first 20 of them) and exits 1 if there is any, 0 if
    the stored counts are exactly the truth. Run it on a database that holds only that
    load: other clicks in the same minutes count as differences.
    """
    expected = read_truth(truth)
    differences = compare(get_settings(), expected)
    for diff in differences[:SHOWN]:
        typer.echo(
            f"{diff.rollup} {diff.ad_id} {diff.bucket:%Y-%m-%dT%H:%MZ} {diff.country or '-'}: "
            f"expected {diff.expected}, stored {diff.stored}"
        )
    rows = len(expected_rows(expected))
    if differences:
        typer.echo(f"{len(differences):,} of {rows:,} rollup rows differ from {truth}", err=True)
        raise typer.Exit(1)
    typer.echo(f"all {rows:,} rollup rows ({expected.total:,} clicks) match {truth}", err=True)
