"""`/metrics` of `workbench serve`: Prometheus text with vLLM's metric names, labels (model_name,
engine) and bucket boundaries (vllm/v1/metrics/loggers.py and buckets.py, vLLM 0.32), so a vLLM
Grafana dashboard reads it unchanged. Fed by engine events, in the engine thread."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from engine.types import EngineEvent, RequestFinished, RequestStarted, StepEvent, TokenEvent

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
               40.0, 80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                           120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
ITERATION_TOKENS_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
# vLLM's FinishReason strings; ours map onto them
FINISHED_REASONS = {"stop": "stop", "length": "length", "cancelled": "abort", "error": "error"}
LABELS = ("model_name", "engine")


def buckets_1_2_5(max_value: int) -> list[float]:
    """1, 2, 5, 10, 20, 50 ... up to max_value (vLLM's build_1_2_5_buckets)."""
    out: list[float] = []
    exp = 0
    while True:
        for m in (1, 2, 5):
            v = m * 10**exp
            if v > max_value:
                return out
            out.append(v)
        exp += 1


class _Live:
    __slots__ = ("arrival_ns", "last_ns", "scheduled")

    def __init__(self, arrival_ns: int):
        self.arrival_ns = arrival_ns
        self.last_ns: int | None = None
        self.scheduled = False


class ServeMetrics:
    """Use `on_event` as an engine listener; `render()` is the /metrics body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model_name: str, max_model_len: int = 0):
        self.registry = r = CollectorRegistry()
        lv = (model_name, "0")
        tokens_buckets = buckets_1_2_5(max_model_len or 131072)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, LABELS, registry=r).labels(*lv)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, LABELS, registry=r).labels(*lv)

        def hist(name: str, doc: str, buckets) -> Histogram:
            return Histogram(name, doc, LABELS, buckets=buckets, registry=r).labels(*lv)

        self.running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
        self.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        self.kv_usage = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
        self.prefix_queries = counter("vllm:prefix_cache_queries",
                                      "Prefix cache queries, in terms of number of queried tokens.")
        self.prefix_hits = counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.")
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        success = Counter("vllm:request_success", "Count of successfully processed requests.",
                          [*LABELS, "finished_reason"], registry=r)
        self.success = {ours: success.labels(*lv, theirs) for ours, theirs in FINISHED_REASONS.items()}
        for theirs in ("stop", "length", "abort", "error", "repetition"):
            success.labels(*lv, theirs)  # every series present from the start, as vLLM has them
        self.rejections = Counter("vllm:admission_rejections", "Requests rejected at admission.",
                                  ["model_name", "reason"], registry=r).labels(model_name, "queue_full")
        self.request_prompt_tokens = hist("vllm:request_prompt_tokens", "Number of prefill tokens processed.",
                                          tokens_buckets)
        self.request_generation_tokens = hist("vllm:request_generation_tokens",
                                              "Number of generation tokens processed.", tokens_buckets)
        self.request_max_tokens = hist("vllm:request_params_max_tokens",
                                       "Histogram of the max_tokens request parameter.", tokens_buckets)
        self.iteration_tokens = hist("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
                                     ITERATION_TOKENS_BUCKETS)
        self.ttft = hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                         TTFT_BUCKETS)
        self.itl = hist("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                        ITL_BUCKETS)
        self.tpot = hist("vllm:request_time_per_output_token_seconds",
                         "Histogram of time_per_output_token_seconds per request.", ITL_BUCKETS)
        self.e2e = hist("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                        REQUEST_LATENCY_BUCKETS)
        self.queue_time = hist("vllm:request_queue_time_seconds",
                               "Histogram of time spent in WAITING phase for request.", REQUEST_LATENCY_BUCKETS)
        self.prefill_time = hist("vllm:request_prefill_time_seconds",
                                 "Histogram of time spent in PREFILL phase for request.", REQUEST_LATENCY_BUCKETS)
        self.decode_time = hist("vllm:request_decode_time_seconds",
                                "Histogram of time spent in DECODE phase for request.", REQUEST_LATENCY_BUCKETS)
        self.spec_drafts = counter("vllm:spec_decode_num_drafts", "Number of spec decoding drafts.")
        self.spec_draft_tokens = counter("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.")
        self.spec_accepted = counter("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.")
        self._live: dict[str, _Live] = {}

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # ---- engine thread ----
    def on_event(self, ev: EngineEvent) -> None:
        if isinstance(ev, TokenEvent):
            self._tokens(ev)
        elif isinstance(ev, RequestStarted):
            self._live[ev.request_id] = _Live(ev.arrival_ns)
            self.waiting.inc()
            self.request_max_tokens.observe(ev.params.max_tokens)
        elif isinstance(ev, RequestFinished):
            self._finished(ev)
        elif isinstance(ev, StepEvent):
            if ev.kv_blocks_used is not None and ev.kv_blocks_free is not None:
                total = ev.kv_blocks_used + ev.kv_blocks_free
                self.kv_usage.set(ev.kv_blocks_used / total if total else 0.0)
            self.iteration_tokens.observe(ev.prefill_tokens + ev.decode_tokens)

    def _tokens(self, ev: TokenEvent) -> None:
        live = self._live.get(ev.request_id)
        if live is None or not ev.token_ids:
            return
        self.generation_tokens.inc(len(ev.token_ids))
        if live.last_ns is None:
            self.ttft.observe(max(0, ev.t_ns - live.arrival_ns) / 1e9)
            self.waiting.dec()
            self.running.inc()
            live.scheduled = True
        else:
            # vLLM's meaning: one observation per engine output, however many tokens it holds
            self.itl.observe(max(0, ev.t_ns - live.last_ns) / 1e9)
        live.last_ns = ev.t_ns

    def _finished(self, ev: RequestFinished) -> None:
        live = self._live.pop(ev.request_id, None)
        if live is None:
            return
        (self.running if live.scheduled else self.waiting).dec()
        r = ev.result
        m = r.metrics
        self.success.get(r.finish_reason, self.success["error"]).inc()
        self.prompt_tokens.inc(m.prompt_tokens)
        self.request_prompt_tokens.observe(m.prompt_tokens)
        self.request_generation_tokens.observe(m.output_tokens)
        self.prefix_queries.inc(m.prompt_tokens)
        self.prefix_hits.inc(m.cached_prompt_tokens)
        self.spec_drafts.inc(m.spec_verify_steps)
        self.spec_draft_tokens.inc(m.spec_draft_tokens)
        self.spec_accepted.inc(m.spec_accepted_tokens)
        if m.e2e_s is not None:
            self.e2e.observe(m.e2e_s)
        if m.tpot_s is not None:
            self.tpot.observe(m.tpot_s)
        if m.queue_time_s is not None:
            self.queue_time.observe(m.queue_time_s)
        if m.prefill_time_s is not None:
            self.prefill_time.observe(m.prefill_time_s)
        if m.first_token_ns is not None and m.finished_ns is not None:
            self.decode_time.observe((m.finished_ns - m.first_token_ns) / 1e9)
