"""The discovery client's exceptions: one per error etcd's v2discovery names, with etcd's text.

    DiscoveryError
    ├── InvalidUrlError           discovery: invalid URL             (a registered value is not name=URL)
    ├── BadSizeKeyError           discovery: size key is bad         (_config/size is not an integer)
    ├── SizeNotFoundError         discovery: size key not found      (no such token)
    ├── DuplicateIdError          discovery: found duplicate id      (ID registered with another value)
    ├── DuplicateNameError        discovery: found duplicate name    (two of the first N share a name)
    ├── ClusterFullError          discovery: cluster is full         (N others registered first)
    ├── TooManyRetriesError       discovery: too many retries        (the service stayed unreachable)
    ├── BadDiscoveryEndpointError discovery: bad discovery endpoint  (answers, but not as etcd's v2 API)
    └── DiscoveryTimeoutError     discovery: timed out ...           (the caller's deadline passed)

``str(error)`` is etcd's message alone (members print it as etcd does); ``error.detail`` says more where
there is more to say (which URL, which value).
"""

from __future__ import annotations

__all__ = [
    "BadDiscoveryEndpointError",
    "BadSizeKeyError",
    "ClusterFullError",
    "DiscoveryError",
    "DiscoveryTimeoutError",
    "DuplicateIdError",
    "DuplicateNameError",
    "InvalidUrlError",
    "SizeNotFoundError",
    "TooManyRetriesError",
]


class DiscoveryError(Exception):
    """Discovery could not produce an initial cluster; ``str()`` is etcd's wording."""

    message = "discovery: failed"

    def __init__(self, message: str | None = None, *, detail: str = "") -> None:
        super().__init__(message or self.message)
        self.detail = detail


class InvalidUrlError(DiscoveryError):
    message = "discovery: invalid URL"


class BadSizeKeyError(DiscoveryError):
    message = "discovery: size key is bad"


class SizeNotFoundError(DiscoveryError):
    message = "discovery: size key not found"


class DuplicateIdError(DiscoveryError):
    message = "discovery: found duplicate id"


class DuplicateNameError(DiscoveryError):
    message = "discovery: found duplicate name"


class ClusterFullError(DiscoveryError):
    message = "discovery: cluster is full"


class TooManyRetriesError(DiscoveryError):
    message = "discovery: too many retries"


class BadDiscoveryEndpointError(DiscoveryError):
    message = "discovery: bad discovery endpoint"


class DiscoveryTimeoutError(DiscoveryError):
    message = "discovery: timed out waiting for the cluster's members"
