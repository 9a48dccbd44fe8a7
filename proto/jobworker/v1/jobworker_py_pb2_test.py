"""The generated modules import under their package name and match jobworker.proto."""

import grpc

from jobworker.v1 import jobworker_pb2, jobworker_pb2_grpc


def test_service_has_every_rpc_of_the_proto() -> None:
    service = jobworker_pb2.DESCRIPTOR.services_by_name["JobWorker"]
    assert service.full_name == "jobworker.v1.JobWorker"
    assert {m.name for m in service.methods} == {
        "StartJob",
        "StopJob",
        "GetJob",
        "ListJobs",
        "StreamOutput",
        "SignalJob",
    }
    assert service.methods_by_name["StreamOutput"].server_streaming


def test_messages_round_trip_through_the_wire_format() -> None:
    request = jobworker_pb2.StartJobRequest(argv=["echo", "hi"], env={"A": "1"}, cwd="/")
    decoded = jobworker_pb2.StartJobRequest.FromString(request.SerializeToString())
    assert decoded == request
    assert list(decoded.argv) == ["echo", "hi"]


def test_grpc_module_builds_a_stub_on_a_channel() -> None:
    with grpc.insecure_channel("localhost:1") as channel:
        # grpc_python_out writes no annotations (and no .pyi) for the gRPC module.
        stub = jobworker_pb2_grpc.JobWorkerStub(channel)  # type: ignore[no-untyped-call]
        assert callable(stub.StartJob)
