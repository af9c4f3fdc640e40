"""download.v1, the service's internal gRPC API: download.proto and the Python code protoc
generates from it (checked in, so that running the service needs only grpcio and protobuf;
download.proto says how to generate it again)."""
