"""``python -m flotilla.fleetctl``: fleetctl until the ``fleetctl`` console script is installed."""

from flotilla.fleetctl.main import main

main()
