"""Command-line entry points: thin layers over the flotilla packages."""

__all__: list[str] = []
