"""etcd's discovery protocol: the service that hands out tokens (``flotilla discovery``) and the member's
client that registers under a token and waits for the cluster's founding members."""

from flotilla.discovery.client import create_token, get_cluster, join_cluster, registration_value
from flotilla.discovery.errors import (
    BadDiscoveryEndpointError,
    BadSizeKeyError,
    ClusterFullError,
    DiscoveryError,
    DiscoveryTimeoutError,
    DuplicateIdError,
    DuplicateNameError,
    InvalidUrlError,
    SizeNotFoundError,
    TooManyRetriesError,
)
from flotilla.discovery.service import ServiceSettings, create_app, run_service
from flotilla.discovery.store import StoreProcess, StoreStartError

__all__ = [
    "BadDiscoveryEndpointError",
    "BadSizeKeyError",
    "ClusterFullError",
    "DiscoveryError",
    "DiscoveryTimeoutError",
    "DuplicateIdError",
    "DuplicateNameError",
    "InvalidUrlError",
    "ServiceSettings",
    "SizeNotFoundError",
    "StoreProcess",
    "StoreStartError",
    "TooManyRetriesError",
    "create_app",
    "create_token",
    "get_cluster",
    "join_cluster",
    "registration_value",
    "run_service",
]
