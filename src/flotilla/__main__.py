"""``python -m flotilla``: the same as the ``flotilla`` command."""

from flotilla.cli.main import main

main()
