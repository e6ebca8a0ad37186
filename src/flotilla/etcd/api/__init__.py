"""etcd 3.4's v3 wire format: .proto sources and their generated modules (regenerate with scripts/gen-protos).

Import the modules themselves: ``from flotilla.etcd.api import rpc_pb2, rpc_pb2_grpc, kv_pb2``.
"""

__all__: list[str] = []
