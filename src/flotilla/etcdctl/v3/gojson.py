"""Go's ``encoding/json`` view of etcd's protobuf messages, as etcdctl's json printer shows them.

etcdctl marshals the gogo-generated Go structs with ``encoding/json``, not with protobuf's JSON mapping:
field names are the ``.proto`` names (the struct tags), a oneof is an interface field named after the
oneof in Go's CamelCase holding a wrapper struct whose field has no tag (``{"Response":{"ResponsePut":
{...}}}``), every field is ``omitempty`` (zero numbers, false, empty strings, bytes and lists vanish),
int64/uint64 are bare numbers, bytes are standard base64, enums are their numbers. flotilla.gotext's
go_json writes the result.
"""

from __future__ import annotations

import base64

from google.protobuf.descriptor import FieldDescriptor

_BYTES = FieldDescriptor.TYPE_BYTES
_MESSAGE = FieldDescriptor.TYPE_MESSAGE


def go_camel(name: str) -> str:
    """protoc-gen-go's CamelCase: ``response_put`` -> ``ResponsePut``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def to_go(message) -> dict:
    """The dict that Go's encoding/json would produce for the gogo struct of ``message``."""
    out: dict = {}
    descriptor = message.DESCRIPTOR
    seen_oneofs: set[str] = set()
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and not _synthetic(oneof):
            if oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(oneof.name)
            which = message.WhichOneof(oneof.name)
            if which is not None:
                chosen = descriptor.fields_by_name[which]
                out[go_camel(oneof.name)] = {go_camel(which): _value(chosen, getattr(message, which))}
            continue
        value = getattr(message, field.name)
        if field.is_repeated:
            if len(value):
                out[field.name] = [_value(field, v) for v in value]
        elif field.type == _MESSAGE:
            if message.HasField(field.name):
                out[field.name] = _value(field, value)
        elif value:
            out[field.name] = _value(field, value)
    return out


def _synthetic(oneof) -> bool:
    # proto3 `optional` fields live in a synthetic oneof; gogo never had them, treat them as plain fields.
    return getattr(oneof, "is_synthetic", False) or oneof.name.startswith("_")


def _value(field, value):
    if field.type == _MESSAGE:
        return to_go(value)
    if field.type == _BYTES:
        return b64(value)
    return value


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
