#!/usr/bin/env python3
"""Asks confirm-service, with a standard gRPC client (grpcio), over mutual TLS: server
reflection v1 and v1alpha (the services it lists) and health. Usage:

    PYTHONPATH=$(scripts/grpc-tools.sh) python3 scripts/grpc-check.py \
        HOST:PORT CA.pem CLIENT.pem CLIENT.key.pem [PLAIN-HEALTH-HOST:PORT]

Prints one line per check ("v1 services: ...", "v1alpha services: ...", "health: SERVING",
"plain health: SERVING") and exits 0, or exits 1 at the first failure.
"""
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2


def list_services(channel, version):
    # grpcio-reflection ships the v1alpha messages only; v1's are the same on the wire, so
    # v1 is asked with them under its own method name.
    pb = v1alpha_pb2
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=pb.ServerReflectionRequest.SerializeToString,
        response_deserializer=pb.ServerReflectionResponse.FromString,
    )
    answers = call(iter([pb.ServerReflectionRequest(list_services="")]), timeout=10)
    for answer in answers:
        return sorted(s.name for s in answer.list_services_response.service)
    return []


def main():
    target, ca, cert, key = sys.argv[1:5]
    read = lambda p: open(p, "rb").read()
    creds = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
    options = (("grpc.ssl_target_name_override", "localhost"),)
    with grpc.secure_channel(target, creds, options) as channel:
        for version in ("v1", "v1alpha"):
            print(f"{version} services: {' '.join(list_services(channel, version))}")
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        print(f"health: {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}")
    if len(sys.argv) > 5:
        with grpc.insecure_channel(sys.argv[5]) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="onshi.v1.Confirmation"), timeout=10)
            print(f"plain health: {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}")


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as e:
        print(f"grpc-check: {e.code()}: {e.details()}", file=sys.stderr)
        sys.exit(1)
