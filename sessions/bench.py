"""Load benchmarks against an Engine: workloads (chat, mixed lengths, code-edit, JSON, trace replay),
Poisson or fixed-concurrency arrivals, every request and its token times recorded in DuckDB."""
from __future__ import annotations

import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from engine import Engine, EngineError, RequestFinished, SamplingParams
from engine.types import Prompt
from sessions.errors import SessionsError
from sessions.recorder import Recorder, insert_many
from sessions.store import Store


@dataclass(slots=True)
class BenchItem:
    name: str  # which kind of entry, e.g. "mixed:long"
    prompt: Prompt
    max_tokens: int
    prompt_token_ids: list[int] | None = None  # exact ids of a raw-text prompt (no chat template)


@dataclass(slots=True)
class WorkloadOptions:
    num_requests: int
    max_tokens: int
    seed: int = 0
    store: Store | None = None  # for workloads read from the database (trace replay)
    trace_id: str | None = None
    # the vLLM datasets (sessions/datasets.py): a Hugging Face tokenizer makes and counts their tokens
    tokenizer: Any = None
    dataset_path: str | None = None
    input_len: int = 1024
    output_len: int | None = None  # default: max_tokens (sharegpt: each reply's own length)
    range_ratio: float = 0.0
    prefix_len: int = 0
    suffix_len: int = 256
    num_prefixes: int = 10
    tokenizer_name: str | None = None  # recorded with the run


Workload = Callable[[WorkloadOptions], list[BenchItem]]
WORKLOADS: dict[str, Workload] = {}


def workload(name: str) -> Callable[[Workload], Workload]:
    """Register a workload under a name `workbench bench --workload NAME` accepts."""

    def deco(fn: Workload) -> Workload:
        WORKLOADS[name] = fn
        return fn

    return deco


def build_workload(name: str, opts: WorkloadOptions) -> list[BenchItem]:
    fn = WORKLOADS.get(name)
    if fn is None:
        raise SessionsError(f"unknown workload {name!r}: choose one of {', '.join(WORKLOADS)}")
    if opts.num_requests < 1:
        raise SessionsError(f"--requests must be at least 1 (got {opts.num_requests})")
    items = fn(opts)
    if not items:
        raise SessionsError(f"workload {name!r} produced no requests")
    return items


# ---- built-in workloads: small, deterministic from the seed, no downloads ----

_QUESTIONS = [
    "What is the capital of France?", "Explain what a hash table is in two sentences.",
    "Give me three tips for writing clear emails.", "Why is the sky blue?",
    "What does HTTP status 429 mean?", "Summarize the plot of Romeo and Juliet briefly.",
    "How do I reverse a list in Python?", "What is the difference between RAM and disk?",
    "Name three prime numbers greater than 50.", "What is a good name for a grey cat?",
    "Write a haiku about autumn rain.", "How many minutes are in a day?",
    "What is photosynthesis?", "Suggest a weekend hobby that costs little.",
    "Explain recursion to a child.", "What is the boiling point of water at sea level?",
]
_SENTENCES = [
    "The committee met on Tuesday to review the quarterly budget and the hiring plan.",
    "Rain moved in from the west, and by noon the streets were quiet and grey.",
    "Each service writes its logs to a shared bucket that is rotated every night.",
    "The recipe calls for two cups of flour, one egg and a pinch of salt.",
    "Researchers measured the latency of every request during the evening peak.",
    "A small boat crossed the harbour while the ferry waited at the pier.",
    "The new scheduler admits requests in order and batches their decode steps.",
    "Her notes listed the open questions, the owners and the dates they were due.",
]
# whole small files, as an editor sends them: the edited file the model returns repeats most of
# the prompt, which is the case prompt lookup is for
_CODE = [
    ("python", """import json
from pathlib import Path


def load_users(path):
    with open(path) as f:
        data = json.load(f)
    users = []
    for row in data:
        if row.get("active"):
            users.append(row)
    return users


def count_by_city(users):
    counts = {}
    for user in users:
        city = user.get("city", "unknown")
        counts[city] = counts.get(city, 0) + 1
    return counts


def save_counts(counts, path):
    Path(path).write_text(json.dumps(counts, indent=2))


if __name__ == "__main__":
    users = load_users("users.json")
    save_counts(count_by_city(users), "counts.json")
"""),
    ("python", """class Inventory:
    def __init__(self):
        self.items = {}

    def add(self, name, qty):
        if qty <= 0:
            raise ValueError("qty must be positive")
        self.items[name] = self.items.get(name, 0) + qty

    def remove(self, name, qty):
        have = self.items.get(name, 0)
        if qty > have:
            raise ValueError("not enough " + name)
        self.items[name] = have - qty
        if self.items[name] == 0:
            del self.items[name]

    def total(self):
        return sum(self.items.values())

    def report(self):
        lines = []
        for name in sorted(self.items):
            lines.append(name + ": " + str(self.items[name]))
        return "\n".join(lines)
"""),
    ("javascript", """const express = require('express');
const app = express();

let todos = [];
let nextId = 1;

app.use(express.json());

app.get('/todos', (req, res) => {
  res.json(todos);
});

app.post('/todos', (req, res) => {
  const todo = { id: nextId++, title: req.body.title, done: false };
  todos.push(todo);
  res.status(201).json(todo);
});

app.delete('/todos/:id', (req, res) => {
  const id = parseInt(req.params.id, 10);
  todos = todos.filter((t) => t.id !== id);
  res.status(204).end();
});

app.listen(3000, () => {
  console.log('listening on 3000');
});
"""),
    ("python", """def parse_line(line):
    parts = line.strip().split(",")
    if len(parts) != 3:
        return None
    name, qty, price = parts
    return {"name": name, "qty": int(qty), "price": float(price)}


def read_orders(lines):
    orders = []
    for line in lines:
        order = parse_line(line)
        if order is not None:
            orders.append(order)
    return orders


def order_total(orders):
    total = 0.0
    for order in orders:
        total += order["qty"] * order["price"]
    return round(total, 2)


def biggest_order(orders):
    best = None
    for order in orders:
        if best is None or order["qty"] * order["price"] > best["qty"] * best["price"]:
            best = order
    return best
"""),
]
# small, local edits per file (rename, a changed constant, one more check): the reply is the file
# again with a few lines changed
_EDITS = [
    ["Rename save_counts to write_counts.", "Make count_by_city skip users without a city.",
     "Change the output file to city_counts.json."],
    ["Rename report to summary.", "Make remove() raise KeyError for an unknown item.",
     "Change the error message to say quantity instead of qty."],
    ["Change the port to 8080.", "Rename todos to items.", "Make GET /todos return only the open todos."],
    ["Rename biggest_order to largest_order.", "Skip lines that start with #.",
     "Make order_total round to one decimal."],
]
_PEOPLE = [
    ("Ada", 36, "London", "mathematician"), ("Linus", 54, "Portland", "engineer"),
    ("Grace", 45, "New York", "admiral"), ("Yuki", 29, "Osaka", "designer"),
    ("Omar", 41, "Cairo", "doctor"), ("Ines", 33, "Lisbon", "pilot"),
]


def _document(rng: random.Random, words: int) -> str:
    out: list[str] = []
    n = 0
    while n < words:
        s = rng.choice(_SENTENCES)
        out.append(s)
        n += len(s.split())
    return " ".join(out)


@workload("chat")
def chat_workload(o: WorkloadOptions) -> list[BenchItem]:
    rng = random.Random(o.seed)
    system = {"role": "system", "content": "You are a helpful assistant. Answer briefly."}
    return [BenchItem("chat", [system, {"role": "user", "content": rng.choice(_QUESTIONS)}], o.max_tokens)
            for _ in range(o.num_requests)]


@workload("mixed")
def mixed_workload(o: WorkloadOptions) -> list[BenchItem]:
    """Short, medium and long inputs with short, medium and full outputs, shuffled."""
    rng = random.Random(o.seed)
    shapes = [("short", 20, 0.25), ("medium", 200, 0.5), ("long", 700, 1.0)]
    items = []
    for _ in range(o.num_requests):
        label, words, out_share = rng.choice(shapes)
        text = _document(rng, words)
        prompt = f"Read this text and summarize it.\n\n{text}"
        items.append(BenchItem(f"mixed:{label}", prompt, max(1, int(o.max_tokens * out_share))))
    return items


@workload("code-edit")
def code_edit_workload(o: WorkloadOptions) -> list[BenchItem]:
    rng = random.Random(o.seed)
    items = []
    for _ in range(o.num_requests):
        i = rng.randrange(len(_CODE))
        lang, code = _CODE[i]
        edit = rng.choice(_EDITS[i])
        prompt = [
            {"role": "system", "content": "You edit code. Reply with the whole edited file in one code block "
                                          "and nothing else."},
            {"role": "user", "content": f"{edit}\n\n```{lang}\n{code}```"},
        ]
        items.append(BenchItem("code-edit", prompt, o.max_tokens))
    return items


@workload("json")
def json_workload(o: WorkloadOptions) -> list[BenchItem]:
    rng = random.Random(o.seed)
    items = []
    for _ in range(o.num_requests):
        name, age, city, job = rng.choice(_PEOPLE)
        prompt = [
            {"role": "system", "content": "Reply with one JSON object and nothing else."},
            {"role": "user", "content": f"Make a JSON object with keys name, age, city, job for: {name} is a "
                                        f"{age}-year-old {job} who lives in {city}."},
        ]
        items.append(BenchItem("json", prompt, o.max_tokens))
    return items


# ---- public prompts (sessions/data/public/spec_prompts.jsonl): a tuning half and a report half ----

PUBLIC_PROMPTS = Path(__file__).parent / "data" / "public" / "spec_prompts.jsonl"


def load_public_prompts(workload: str, split: str, path: Path = PUBLIC_PROMPTS) -> list[dict[str, Any]]:
    """Records of one workload ("code-fix", "chat") and one split ("tune", "report"), in file order."""
    try:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        raise SessionsError(f"cannot read the public prompt set {path}: {e}") from None
    return [r for r in rows if r["workload"] == workload and r["split"] == split]


def _public_item(row: dict[str, Any], max_tokens: int) -> BenchItem:
    r = row["record"]
    if row["workload"] == "code-fix":
        # asked for the whole code back, the answer copies much of the prompt (the prompt-lookup case)
        prompt: Prompt = [{"role": "user", "content": "Rewrite this code with the bug fixed. Output only the code."
                                                      f"\n\n```python\n{r['buggy_code'].strip()}\n```"}]
    else:
        prompt = [{"role": "user", "content": r["turns"][0]}]
    return BenchItem(f"{row['workload']}:{row['id']}", prompt, max_tokens)


def _public_workload(workload: str, split: str) -> Workload:
    def build(o: WorkloadOptions) -> list[BenchItem]:
        rows = load_public_prompts(workload, split)
        if not rows:
            raise SessionsError(f"the public prompt set has no {workload}/{split} records")
        start = o.seed % len(rows)  # each request the next record; more requests than records: around again
        return [_public_item(rows[(start + i) % len(rows)], o.max_tokens) for i in range(o.num_requests)]

    build.__doc__ = f"Public {workload} prompts, {split} half (sessions/data/public/SOURCES.md)."
    return build


for _w, _name in (("code-fix", "public-code"), ("chat", "public-chat")):
    for _s in ("tune", "report"):
        workload(f"{_name}-{_s}")(_public_workload(_w, _s))


@workload("trace")
def trace_workload(o: WorkloadOptions) -> list[BenchItem]:
    """Replay the LLM calls of a stored agent trace (`workbench import`), in order, as new requests;
    with more requests than calls it starts over."""
    try:
        from sessions.traces.store import load_trace, resolve_trace_id, trace_ids
    except ImportError as e:  # the traces room is optional here
        raise SessionsError(f"trace replay needs the traces store: {e}") from None
    if o.store is None:
        raise SessionsError("the trace workload reads a stored trace; it needs the database")
    if o.trace_id:
        tid = resolve_trace_id(o.store, o.trace_id)
    else:
        ids = trace_ids(o.store)
        if not ids:
            raise SessionsError("no stored traces: import one with `workbench import FILE`, or pick another workload")
        tid = ids[0]
    trace = load_trace(o.store, tid)
    calls = sorted((s for s in trace.spans if s.kind == "llm"), key=lambda s: s.seq)
    prompts = []
    for span in calls:
        msgs = [_plain_message(m) for m in trace.input_for(span)]
        if msgs:
            out = span.attributes.get("gen_ai.usage.output_tokens")
            limit = min(o.max_tokens, int(out)) if isinstance(out, int) and out > 0 else o.max_tokens
            prompts.append((msgs, limit))
    if not prompts:
        raise SessionsError(f"trace {tid} has no LLM calls with input messages to replay")
    return [BenchItem(f"trace:{i % len(prompts)}", prompts[i % len(prompts)][0], prompts[i % len(prompts)][1])
            for i in range(o.num_requests)]


def _plain_message(m) -> dict[str, Any]:
    """A trace message as a chat message any template accepts: tool calls folded into the text."""
    content = m.content or ""
    if m.tool_calls:
        calls = "\n".join(f"{t.name}({json.dumps(t.arguments, ensure_ascii=False)})" for t in m.tool_calls)
        content = f"{content}\n{calls}".strip()
    return {"role": m.role, "content": content}


# ---- arrivals ----

def poisson_offsets(n: int, rate: float, seed: int) -> list[float]:
    """Seconds from the start at which each request is sent (exponential gaps, as `vllm bench serve`
    does with burstiness 1)."""
    rng = random.Random(seed + 1)
    t = 0.0
    out = []
    for _ in range(n):
        out.append(t)
        t += rng.expovariate(rate)
    return out


# ---- the run ----

@dataclass(slots=True)
class BenchConfig:
    workload: str = "chat"
    num_requests: int = 16
    concurrency: int | None = None  # keep this many in flight
    request_rate: float | None = None  # Poisson arrivals per second
    max_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0
    ignore_eos: bool = False
    trace_id: str | None = None
    base_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)  # WorkloadOptions fields of the vLLM datasets

    def check(self) -> None:
        if self.workload not in WORKLOADS:
            raise SessionsError(f"unknown workload {self.workload!r}: choose one of {', '.join(WORKLOADS)}")
        if self.num_requests < 1:
            raise SessionsError(f"--requests must be at least 1 (got {self.num_requests})")
        if self.concurrency is not None and self.concurrency < 1:
            raise SessionsError(f"--concurrency must be at least 1 (got {self.concurrency})")
        if self.request_rate is not None and not self.request_rate > 0:
            raise SessionsError(f"--rate must be a positive number of requests per second (got {self.request_rate})")
        if self.max_tokens < 1:
            raise SessionsError(f"--max-tokens must be at least 1 (got {self.max_tokens})")


@dataclass(slots=True)
class BenchOutcome:
    run_id: str
    status: str  # finished | interrupted
    submitted: int
    completed: int


class _Tracker:
    """Counts this run's requests in flight; the engine thread only decrements and notifies."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.cond = threading.Condition()
        self.in_flight = 0
        self.finished = 0

    def on_event(self, ev) -> None:
        if isinstance(ev, RequestFinished) and ev.tags.get("bench_run") == self.run_id:
            with self.cond:
                self.in_flight -= 1
                self.finished += 1
                self.cond.notify_all()


Progress = Callable[[int, int, int], None]  # (finished, submitted, total)


def run_bench(engine: Engine, store: Store, cfg: BenchConfig, *, progress: Progress | None = None,
              recorder: Recorder | None = None, items: list[BenchItem] | None = None) -> BenchOutcome:
    """Run a benchmark and record it. Ctrl+C (KeyboardInterrupt) cancels what is in flight and
    keeps every finished request; the outcome then has status "interrupted". `recorder`: one that
    already listens to `engine`; without it the run gets its own for its duration."""
    cfg.check()
    if items is None:
        items = build_workload(cfg.workload, WorkloadOptions(cfg.num_requests, cfg.max_tokens, cfg.seed, store,
                                                             cfg.trace_id, **cfg.dataset))
    own_recorder = recorder is None
    rec = recorder or Recorder(store)
    run_id = rec.new_session("bench", model=engine.model_name, backend=engine.backend_name,
                             title=f"bench {cfg.workload} x{len(items)}")
    rec.step_session_id = run_id
    _insert_run(store, run_id, engine, cfg, len(items))
    tracker = _Tracker(run_id)
    if own_recorder:  # a recorder passed in already listens to this engine (the app's): once is enough
        engine.add_listener(rec.on_event)
    engine.add_listener(tracker.on_event)
    # finer GIL hand-offs: reader threads stamp token times sooner under load
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(min(old_switch, 0.0005))
    handles = []
    status = "finished"
    failure: BaseException | None = None
    started = time.perf_counter_ns()
    try:
        try:
            _dispatch(engine, cfg, items, run_id, tracker, handles, started, progress)
            _wait_all(tracker, len(handles), len(items), progress)
        except BaseException as e:
            # keep what finished: cancel the rest, record the run, then let an error go on up
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "error"
            failure = None if isinstance(e, KeyboardInterrupt) else e
            for h in handles:
                h.cancel()
            for h in handles:
                h.result(timeout=30)
        finished = time.perf_counter_ns()
    finally:
        sys.setswitchinterval(old_switch)
        engine.remove_listener(tracker.on_event)
        if own_recorder:
            engine.remove_listener(rec.on_event)
    rec.flush()
    if own_recorder:
        rec.close()
    results = [h.result(timeout=30) for h in handles]
    _finish_run(store, run_id, status, started, finished, items, results)
    if failure is not None:
        raise failure
    completed = sum(1 for r in results if r.finish_reason in ("stop", "length"))
    return BenchOutcome(run_id, status, len(handles), completed)


def _dispatch(engine, cfg: BenchConfig, items: list[BenchItem], run_id: str, tracker: _Tracker,
              handles: list, started: int, progress: Progress | None) -> None:
    offsets = poisson_offsets(len(items), cfg.request_rate, cfg.seed) if cfg.request_rate else None
    limit = cfg.concurrency if cfg.concurrency else (None if offsets else 1)
    total = len(items)
    for i, item in enumerate(items):
        with tracker.cond:
            if offsets is not None:
                due = started + int(offsets[i] * 1e9)
                while (left := due - time.perf_counter_ns()) > 0:
                    tracker.cond.wait(min(left / 1e9, 0.1))
                    _tick(progress, tracker, i, total)
            while limit is not None and tracker.in_flight >= limit:
                tracker.cond.wait(0.1)
                _tick(progress, tracker, i, total)
            tracker.in_flight += 1
        params = SamplingParams(max_tokens=item.max_tokens, temperature=cfg.temperature, seed=cfg.seed + i,
                                ignore_eos=cfg.ignore_eos)
        try:
            h = engine.submit(item.prompt, params, tags={"session_id": run_id, "bench_run": run_id, "item": item.name},
                              prompt_token_ids=item.prompt_token_ids)
        except EngineError:
            with tracker.cond:
                tracker.in_flight -= 1
            raise
        handles.append(h)
        _tick(progress, tracker, i + 1, total)


def _wait_all(tracker: _Tracker, submitted: int, total: int, progress: Progress | None) -> None:
    with tracker.cond:
        while tracker.finished < submitted:
            tracker.cond.wait(0.1)
            _tick(progress, tracker, submitted, total)
    _tick(progress, tracker, submitted, total)


def _tick(progress: Progress | None, tracker: _Tracker, submitted: int, total: int) -> None:
    if progress is not None:
        progress(tracker.finished, submitted, total)


def _insert_run(store: Store, run_id: str, engine: Engine, cfg: BenchConfig, n: int) -> None:
    dataset = {k: v for k, v in cfg.dataset.items() if k != "tokenizer"}
    opts = {"temperature": cfg.temperature, "ignore_eos": cfg.ignore_eos, "trace_id": cfg.trace_id, **dataset, **cfg.extra}
    store.cursor().execute(
        "INSERT INTO bench_runs (id, created_at, workload, backend, model, base_url, num_requests, concurrency,"
        " request_rate, max_tokens, seed, status, options) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [run_id, datetime.now(timezone.utc), cfg.workload, engine.backend_name, engine.model_name, cfg.base_url, n,
         cfg.concurrency, cfg.request_rate, cfg.max_tokens, cfg.seed, "running", json.dumps(opts)],
    )


def _finish_run(store: Store, run_id: str, status: str, started: int, finished: int,
                items: list[BenchItem], results: list) -> None:
    cur = store.cursor()
    rows = [(run_id, i, r.request_id, items[i].name, r.tags.get("remote_id")) for i, r in enumerate(results)]
    cur.execute("BEGIN TRANSACTION")
    try:
        insert_many(cur, "bench_requests", ("run_id", "seq", "request_id", "item", "remote_id"), rows)
        # a remote backend re-stamps arrival when the HTTP request is sent, after the row was written
        for r in results:
            cur.execute("UPDATE requests SET arrival_ns = ? WHERE id = ? AND arrival_ns <> ?",
                        [r.metrics.arrival_ns, r.request_id, r.metrics.arrival_ns])
        cur.execute("UPDATE bench_runs SET status = ?, started_ns = ?, finished_ns = ? WHERE id = ?",
                    [status, started, finished, run_id])
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    from sessions.report import build_report

    summary = build_report(store, run_id)
    cur.execute("UPDATE bench_runs SET summary = ? WHERE id = ?", [json.dumps(_scalars(summary)), run_id])


def _scalars(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without the per-request arrays (those are in requests and token_events)."""
    return {k: v for k, v in summary.items() if not isinstance(v, list)}


# ---- reading runs back ----

RUN_FIELDS = ("median_ttft_ms", "p95_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "p95_tpot_ms", "mean_tpot_ms",
              "p95_e2el_ms", "output_throughput", "request_throughput", "completed", "failed")


def list_runs(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    """Every bench run, newest first, with the summary figures `run_bench` stored when it ended
    (None while a run is still going, or when it was cut off before its summary was written)."""
    rows = store.cursor().execute(
        "SELECT id, created_at, workload, backend, model, base_url, num_requests, concurrency, request_rate,"
        " max_tokens, status, summary FROM bench_runs ORDER BY created_at DESC LIMIT ?", [limit]).fetchall()
    out = []
    for (rid, created, wl, backend, model, base_url, n, conc, rate, max_tokens, status, summary) in rows:
        s = json.loads(summary) if isinstance(summary, str) else (summary or {})
        out.append({"id": rid, "created_at": created, "workload": wl, "backend": backend, "model": model,
                    "base_url": base_url, "num_requests": n, "concurrency": conc, "request_rate": rate,
                    "max_tokens": max_tokens, "status": status, **{k: s.get(k) for k in RUN_FIELDS}, "summary": s})
    return out


from sessions import datasets as _datasets  # noqa: E402,F401  (registers random, sharegpt, prefix-repetition)
