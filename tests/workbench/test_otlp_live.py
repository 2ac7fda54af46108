"""`--otlp-endpoint`: `workbench chat` and `workbench serve` send their request spans through the
OpenTelemetry SDK to a real OTLP/HTTP receiver on loopback (protobuf bodies, decoded here)."""
import threading
import time
import urllib.request
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from test_serve import start_serve, stop_serve

pytestmark = pytest.mark.slow


@pytest.fixture
def collector():
    spans = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            req = ExportTraceServiceRequest.FromString(body)
            for rs in req.resource_spans:
                service = next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        spans.append((service, sp))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1/traces", spans
    srv.shutdown()


def _attrs(sp) -> dict:
    out = {}
    for a in sp.attributes:
        v = a.value
        out[a.key] = v.string_value or v.int_value or v.double_value or [x.string_value for x in v.array_value.values]
    return out


def test_serve_and_chat_send_genai_spans(collector, tmp_path, wb):
    url, spans = collector
    before = time.time_ns()
    proc, port = start_serve(tmp_path / "s.duckdb", "--otlp-endpoint", url)
    try:
        body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}).encode()
        for _ in range(2):
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body,
                                                          {"Content-Type": "application/json"}), timeout=60).read()
    finally:
        stop_serve(proc)  # shutting down flushes the batch
    r = wb("--db", str(tmp_path / "c.duckdb"), "chat", "--prompt", "Hello", "--max-tokens", "4", "--json",
           "--otlp-endpoint", url)
    assert r.returncode == 0, r.stderr
    served = [sp for svc, sp in spans if svc == "workbench serve"]
    chatted = [sp for svc, sp in spans if svc == "workbench chat"]
    assert len(served) == 2 and len(chatted) == 1
    for sp in served + chatted:
        a = _attrs(sp)
        assert sp.name == "chat smollm2-135m" and a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.request.model"] == "smollm2-135m" and a["gen_ai.usage.input_tokens"] > 3
        assert 1 <= a["gen_ai.usage.output_tokens"] <= 5 and a["gen_ai.server.time_to_first_token"] > 0
        assert before < sp.start_time_unix_nano < sp.end_time_unix_nano < time.time_ns()
