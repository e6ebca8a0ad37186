"""The v2 error: etcd 3.4's numeric codes, messages and HTTP statuses (etcdserver/api/v2error).

Every failing store call raises ``V2Error``; the HTTP layer writes ``to_json()`` with ``status`` and puts
``index`` in ``X-Etcd-Index``. The HTTP layer raises the form errors (2xx codes) itself with index 0.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """etcd's public v2 error codes (the ones etcd 3.4 can still return)."""

    KEY_NOT_FOUND = 100
    TEST_FAILED = 101
    NOT_FILE = 102
    NOT_DIR = 104
    NODE_EXIST = 105
    ROOT_RONLY = 107
    DIR_NOT_EMPTY = 108
    UNAUTHORIZED = 110
    VALUE_REQUIRED = 200
    PREV_VALUE_REQUIRED = 201
    TTL_NAN = 202
    INDEX_NAN = 203
    INVALID_FIELD = 209
    INVALID_FORM = 210
    REFRESH_VALUE = 211
    REFRESH_TTL_REQUIRED = 212
    RAFT_INTERNAL = 300
    LEADER_ELECT = 301
    WATCHER_CLEARED = 400
    EVENT_INDEX_CLEARED = 401


_MESSAGES = {
    ErrorCode.KEY_NOT_FOUND: "Key not found",
    ErrorCode.TEST_FAILED: "Compare failed",
    ErrorCode.NOT_FILE: "Not a file",
    ErrorCode.NOT_DIR: "Not a directory",
    ErrorCode.NODE_EXIST: "Key already exists",
    ErrorCode.ROOT_RONLY: "Root is read only",
    ErrorCode.DIR_NOT_EMPTY: "Directory not empty",
    ErrorCode.UNAUTHORIZED: "The request requires user authentication",
    ErrorCode.VALUE_REQUIRED: "Value is Required in POST form",
    ErrorCode.PREV_VALUE_REQUIRED: "PrevValue is Required in POST form",
    ErrorCode.TTL_NAN: "The given TTL in POST form is not a number",
    ErrorCode.INDEX_NAN: "The given index in POST form is not a number",
    ErrorCode.INVALID_FIELD: "Invalid field",
    ErrorCode.INVALID_FORM: "Invalid POST form",
    ErrorCode.REFRESH_VALUE: "Value provided on refresh",
    ErrorCode.REFRESH_TTL_REQUIRED: "A TTL must be provided on refresh",
    ErrorCode.RAFT_INTERNAL: "Raft Internal Error",
    ErrorCode.LEADER_ELECT: "During Leader Election",
    ErrorCode.WATCHER_CLEARED: "watcher is cleared due to etcd recovery",
    ErrorCode.EVENT_INDEX_CLEARED: "The event in requested index is outdated and cleared",
}

# Codes absent here answer 400 Bad Request, as etcd's errorStatus map.
_STATUSES = {
    ErrorCode.KEY_NOT_FOUND: 404,
    ErrorCode.NOT_FILE: 403,
    ErrorCode.DIR_NOT_EMPTY: 403,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.TEST_FAILED: 412,
    ErrorCode.NODE_EXIST: 412,
    ErrorCode.RAFT_INTERNAL: 500,
    ErrorCode.LEADER_ELECT: 500,
}


class V2Error(Exception):
    """A v2 API error as etcd reports it.

    ``index`` is the store index the error is reported at (``X-Etcd-Index``); ``oldest_index`` is set only
    for EVENT_INDEX_CLEARED: the oldest index the event history still holds.
    """

    def __init__(self, code: ErrorCode, cause: str = "", index: int = 0, *, oldest_index: int | None = None):
        self.code = ErrorCode(code)
        self.message = _MESSAGES[self.code]
        self.cause = cause
        self.index = index
        self.oldest_index = oldest_index
        # Go's Error(): message, then the cause in parentheses (even when empty).
        super().__init__(f"{self.message} ({cause})")

    @property
    def status(self) -> int:
        """The HTTP status etcd answers this error with."""
        return _STATUSES.get(self.code, 400)

    def to_json(self) -> dict:
        """etcd's error body: errorCode, message, cause (omitted when empty), index; 401 adds oldestIndex."""
        body: dict = {"errorCode": int(self.code), "message": self.message}
        if self.cause:
            body["cause"] = self.cause
        body["index"] = self.index
        if self.code == ErrorCode.EVENT_INDEX_CLEARED and self.oldest_index is not None:
            body["oldestIndex"] = self.oldest_index
        return body
