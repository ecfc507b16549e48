"""A small OTLP/HTTP trace receiver: what a collector is to the gateway, without a collector.

``POST /v1/traces`` takes an ``ExportTraceServiceRequest`` (protobuf, gzip or not, as the SDK's
exporter sends it), counts its spans and answers an empty ``ExportTraceServiceResponse``;
``GET /stats`` says how many requests and spans came. The benchmark's traced gateway
(``(b3)``) exports here, so the row pays for real export: encoding, compression, a loopback
POST; the tests use it to check what the exporter sends.

Run: ``python -m bench.otlp_sink --port 4318``.
"""

from __future__ import annotations

import argparse
import gzip
import zlib
from dataclasses import dataclass, field

import uvicorn
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PROTOBUF = "application/x-protobuf"


@dataclass
class Received:
    """What the sink has taken in: requests, spans and their names, service names."""

    requests: int = 0
    spans: int = 0
    span_names: list[str] = field(default_factory=list)
    services: set[str] = field(default_factory=set)
    trace_ids: set[str] = field(default_factory=set)
    keep_names: bool = True

    def add(self, message: ExportTraceServiceRequest) -> None:
        """Count one export request's spans (and keep their names, for tests)."""
        self.requests += 1
        for resource_spans in message.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    self.services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                self.spans += len(scope_spans.spans)
                if self.keep_names:
                    self.span_names += [span.name for span in scope_spans.spans]
                    self.trace_ids.update(span.trace_id.hex() for span in scope_spans.spans)


def create_sink(received: Received | None = None) -> Starlette:
    """The receiver's ASGI app; ``received`` collects what comes (a fresh one by default)."""
    state = received if received is not None else Received(keep_names=False)

    async def traces(request: Request) -> Response:
        body = await request.body()
        encoding = request.headers.get("content-encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        message = ExportTraceServiceRequest()
        try:
            message.ParseFromString(body)
        except DecodeError:
            return Response(b"not an ExportTraceServiceRequest", status_code=400)
        state.add(message)
        answer = ExportTraceServiceResponse().SerializeToString()
        return Response(answer, media_type=PROTOBUF)

    async def stats(_: Request) -> JSONResponse:
        return JSONResponse({"requests": state.requests, "spans": state.spans})

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"]), Route("/stats", stats)])
    app.state.received = state
    return app


def main() -> None:
    """Serve the receiver on 127.0.0.1 until stopped."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    uvicorn.run(create_sink(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
