# ruff: noqa
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Request(_message.Message):
    __slots__ = ("ID", "Method", "Path", "Val", "Dir", "PrevValue", "PrevIndex", "PrevExist", "Expiration", "Wait", "Since", "Recursive", "Sorted", "Quorum", "Time", "Stream", "Refresh")
    ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    VAL_FIELD_NUMBER: _ClassVar[int]
    DIR_FIELD_NUMBER: _ClassVar[int]
    PREVVALUE_FIELD_NUMBER: _ClassVar[int]
    PREVINDEX_FIELD_NUMBER: _ClassVar[int]
    PREVEXIST_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    SORTED_FIELD_NUMBER: _ClassVar[int]
    QUORUM_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    ID: int
    Method: str
    Path: str
    Val: str
    Dir: bool
    PrevValue: str
    PrevIndex: int
    PrevExist: bool
    Expiration: int
    Wait: bool
    Since: int
    Recursive: bool
    Sorted: bool
    Quorum: bool
    Time: int
    Stream: bool
    Refresh: bool
    def __init__(self, ID: _Optional[int] = ..., Method: _Optional[str] = ..., Path: _Optional[str] = ..., Val: _Optional[str] = ..., Dir: _Optional[bool] = ..., PrevValue: _Optional[str] = ..., PrevIndex: _Optional[int] = ..., PrevExist: _Optional[bool] = ..., Expiration: _Optional[int] = ..., Wait: _Optional[bool] = ..., Since: _Optional[int] = ..., Recursive: _Optional[bool] = ..., Sorted: _Optional[bool] = ..., Quorum: _Optional[bool] = ..., Time: _Optional[int] = ..., Stream: _Optional[bool] = ..., Refresh: _Optional[bool] = ...) -> None: ...

class Metadata(_message.Message):
    __slots__ = ("NodeID", "ClusterID")
    NODEID_FIELD_NUMBER: _ClassVar[int]
    CLUSTERID_FIELD_NUMBER: _ClassVar[int]
    NodeID: int
    ClusterID: int
    def __init__(self, NodeID: _Optional[int] = ..., ClusterID: _Optional[int] = ...) -> None: ...
