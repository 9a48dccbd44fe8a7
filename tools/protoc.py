"""grpcio-tools' protoc as a Bazel tool, with the well-known types on its include path.

The same as ``python -m grpc_tools.protoc``: it adds the ``google/protobuf/*.proto`` files that
the grpcio-tools wheel ships (``timestamp.proto`` for jobworker.proto) with ``-I``.
"""

from grpc_tools import protoc  # type: ignore[import-untyped]  # No stubs or py.typed.

if __name__ == "__main__":
    protoc.entrypoint()
