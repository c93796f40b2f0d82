"""``python -m adclick`` is the ``adclick`` command."""

from adclick.cli import main

main()
