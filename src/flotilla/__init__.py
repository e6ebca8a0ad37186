"""Flotilla: the CoreOS cluster stack (etcd, fleet, units, cloud-config, updates) in Python."""

__version__ = "0.1.0"

__all__ = ["__version__"]
