"""The context budget: an exact account of every LLM call's prompt tokens by category, growth
over a trace or session, context-stuffing warnings with their evidence, and a trimming policy."""
from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from sessions.errors import SessionsError

SYSTEM = "system_prompt"
TOOLS = "tool_definitions"
HISTORY = "history"
TOOL_RESULTS = "tool_results"
DOCUMENTS = "retrieved_documents"
CURRENT = "current_user_turn"
OVERHEAD = "template_overhead"
CATEGORIES = (SYSTEM, TOOLS, HISTORY, TOOL_RESULTS, DOCUMENTS, CURRENT, OVERHEAD)
# Emptied one after another when attributing; overhead is whatever the template adds around them.
_CONTENT_CATEGORIES = CATEGORIES[:-1]

# How tool use becomes plain text for templates that know only role and content (SmolLM2's and
# most small models'): the Hermes/Qwen convention, the same bytes for the same input every time.
TOOL_FORMAT = "text: tools in the system message as <tools> JSON lines, calls as <tool_call>, results as user <tool_response>"
_TOOLS_HEAD = "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n<tools>\n"
_TOOLS_TAIL = "\n</tools>\nFor each call, return a JSON object with the function name and arguments in <tool_call></tool_call> tags."
_DOC_BLOCK = re.compile(r"<(documents?|context|search_results|retrieved)\b[^>]*>.*?</\1>", re.S | re.I)


class BudgetError(SessionsError):
    """Bad budget input (unknown id, bad policy, unreadable tools file)."""


@dataclass(slots=True)
class BudgetConfig:
    output_reserve: int = 512  # tokens kept free for the answer when the call does not say
    default_context_window: int = 128000  # remote models not in context_windows
    context_windows: dict[str, int] = field(default_factory=dict)  # model name prefix -> window
    fallback_tokenizer: str = "smollm2-135m"
    retrieval_tools: tuple[str, ...] = ("search", "retriev", "lookup_doc", "query_docs", "knowledge", "rag")
    tool_results_max_share: float = 0.25  # of the window, all tool results of one call together
    tool_definitions_max_share: float = 0.10
    long_context_tokens: int = 4096  # prompt tokens in front of the question
    repeat_chunk_chars: int = 200  # chunk size for repeated-content hashes (cut at line ends)
    repeat_min_chars: int = 16  # shorter chunks are not worth flagging
    repeat_min_tokens: int = 16  # wasted tokens a repeat needs before it is flagged
    caps: dict[str, int] = field(default_factory=dict)  # category -> max tokens (0 = no cap)
    apply_to_chat: bool = False  # the app trims each chat turn to the caps before the engine sees it

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "BudgetConfig":
        cfg = BudgetConfig()
        for k, v in d.items():
            if not hasattr(cfg, k):
                raise BudgetError(f"unknown budget setting {k!r}")
            setattr(cfg, k, tuple(v) if k == "retrieval_tools" else v)
        for name, cap in cfg.caps.items():
            if name not in CATEGORIES or name == OVERHEAD:
                raise BudgetError(f"budget.caps.{name}: not a category; use one of {', '.join(CATEGORIES[:-1])}")
            if not isinstance(cap, int) or isinstance(cap, bool) or cap < 0:
                raise BudgetError(f"budget.caps.{name} must be a whole number of tokens >= 0")
        return cfg

    def window_for(self, model: str | None) -> tuple[int, str]:
        name = (model or "").lower()
        best = max((p for p in self.context_windows if name.startswith(p.lower())), key=len, default=None)
        if best is not None:
            return int(self.context_windows[best]), f"config budget.context_windows[{best!r}]"
        return self.default_context_window, "config budget.default_context_window"


@dataclass(slots=True)
class BudgetTokenizer:
    """The tokenizer and chat template that turn messages into prompt ids."""

    name: str
    render: Callable[[list[dict[str, Any]]], list[int]]
    count: Callable[[str], int]
    context_window: int = 0  # 0 when the window comes from config (a stand-in tokenizer)
    stands_in_for: str | None = None  # the model whose own tokenizer is not available

    @staticmethod
    def from_engine(engine: Any, stands_in_for: str | None = None) -> "BudgetTokenizer":
        window = 0 if stands_in_for else int(engine.backend.context_window or 0)
        return BudgetTokenizer(engine.model_name, engine.render_prompt, engine.count_tokens, window, stands_in_for)

    @property
    def label(self) -> str:
        if self.stands_in_for:
            return f"{self.name} (fallback: no local tokenizer for {self.stands_in_for})"
        return self.name


@dataclass(slots=True)
class LLMCall:
    """What one call sent: OpenAI-style messages (role, content, tool_calls, tool_call_id, name)
    and tool definitions."""

    call_id: str
    step: int
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    max_output_tokens: int | None = None
    reported_input_tokens: int | None = None  # what the trace or engine recorded
    tool_result_texts: frozenset[str] = frozenset()  # outputs of the trace's tool spans
    retrieval_call_ids: frozenset[str] = frozenset()


@dataclass(slots=True)
class Segment:
    category: str
    text: str


@dataclass(slots=True)
class CallBudget:
    call_id: str
    step: int
    model: str | None
    tokenizer: str
    context_window: int
    context_window_source: str
    total_tokens: int
    categories: dict[str, int]
    output_reserve: int
    free_tokens: int
    input_recorded: bool = True
    reported_input_tokens: int | None = None
    message_tokens: list[dict[str, Any]] = field(default_factory=list)  # per message, for evidence
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id, "step": self.step, "model": self.model, "tokenizer": self.tokenizer,
            "tool_format": TOOL_FORMAT, "total_tokens": self.total_tokens, "context_window": self.context_window,
            "context_window_source": self.context_window_source, "categories": dict(self.categories),
            "output_reserve": self.output_reserve, "free_tokens": self.free_tokens,
            "input_recorded": self.input_recorded, "reported_input_tokens": self.reported_input_tokens,
            "warnings": self.warnings,
        }


# ---- from messages to categorized, renderable text ----


def tool_json(tool: dict[str, Any]) -> str:
    """One tool definition as the model sees it (sorted keys: the same tool, the same tokens)."""
    fn = tool.get("function", tool) if isinstance(tool, dict) else tool
    return json.dumps({"type": "function", "function": fn}, ensure_ascii=False, sort_keys=True)


def _call_text(tc: dict[str, Any]) -> str:
    fn = tc.get("function") or tc
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            pass
    return json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False, sort_keys=True)


def _is_retrieval(name: str | None, cfg: BudgetConfig) -> bool:
    n = (name or "").lower()
    return any(p in n for p in cfg.retrieval_tools)


def _split_documents(text: str, category: str) -> list[Segment]:
    """Document blocks (<documents>, <context>, ...) inside a message count as retrieved documents."""
    out: list[Segment] = []
    pos = 0
    for m in _DOC_BLOCK.finditer(text):
        if m.start() > pos:
            out.append(Segment(category, text[pos : m.start()]))
        out.append(Segment(DOCUMENTS, m.group(0)))
        pos = m.end()
    if pos < len(text) or not out:
        out.append(Segment(category, text[pos:]))
    return out


def _user_is_tool_result(m: dict[str, Any], call: LLMCall) -> bool:
    """Formats such as SWE-agent send tool output back as a user message: recognise it by the
    trace's own tool results."""
    text = (m.get("content") or "").strip()
    return bool(text) and any(r and (text == r or text.startswith(r)) for r in call.tool_result_texts)


def _key(v: Any) -> str | None:
    """A tool-call id as a dict key: formats write lists and numbers too."""
    return v if v is None or type(v) is str else json.dumps(v, sort_keys=True)


def segment_messages(call: LLMCall, cfg: BudgetConfig) -> list[tuple[str, list[Segment]]]:
    """(role, segments) per rendered message; joining a message's segments gives its content."""
    msgs = call.messages
    user_kinds = ["tool" if m.get("role") == "user" and _user_is_tool_result(m, call) else m.get("role") for m in msgs]
    current = max((i for i, k in enumerate(user_kinds) if k == "user"), default=None)
    call_names: dict[str, str] = {}
    for m in msgs:
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") or tc
            cid = _key(tc.get("id") or tc.get("call_id"))
            if cid:
                call_names[cid] = fn.get("name") or ""
    out: list[tuple[str, list[Segment]]] = []
    tools_placed = not call.tools
    for i, m in enumerate(msgs):
        role = m.get("role") or "user"
        content = m.get("content") or ""
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False, sort_keys=True)
        if role == "system":
            segs = _split_documents(content, SYSTEM)
            if not tools_placed:
                segs += _tool_segments(call.tools)
                tools_placed = True
            out.append(("system", segs))
        elif role == "tool" or (role == "user" and user_kinds[i] == "tool"):
            cid = _key(m.get("tool_call_id"))
            retrieval = (cid in call.retrieval_call_ids) or _is_retrieval(m.get("name") or call_names.get(cid or ""), cfg)
            cat = DOCUMENTS if retrieval else TOOL_RESULTS
            if role == "tool":
                out.append(("user", [Segment(OVERHEAD, "<tool_response>\n"), Segment(cat, content), Segment(OVERHEAD, "\n</tool_response>")]))
            else:
                out.append(("user", [Segment(cat, content)]))
        elif role == "user":
            out.append(("user", _split_documents(content, CURRENT if i == current else HISTORY)))
        else:  # assistant (and any other role the format invented)
            segs = [Segment(HISTORY, content)] if content else []
            for tc in m.get("tool_calls") or []:
                segs += [Segment(OVERHEAD, "\n<tool_call>\n" if segs else "<tool_call>\n"), Segment(HISTORY, _call_text(tc)),
                         Segment(OVERHEAD, "\n</tool_call>")]
            out.append((role if role == "assistant" else "user", segs or [Segment(HISTORY, "")]))
    if not tools_placed:  # tools but no system message: they get one of their own
        out.insert(0, ("system", _tool_segments(call.tools)))
    return out


def _tool_segments(tools: list[dict[str, Any]]) -> list[Segment]:
    body = "\n".join(tool_json(t) for t in tools)
    return [Segment(OVERHEAD, _TOOLS_HEAD), Segment(TOOLS, body), Segment(OVERHEAD, _TOOLS_TAIL)]


def render_messages(segmented: list[tuple[str, list[Segment]]], emptied: frozenset[str] = frozenset()) -> list[dict[str, str]]:
    """The role/content messages the chat template renders, with the `emptied` categories blank."""
    return [{"role": role, "content": "".join(s.text for s in segs if s.category not in emptied)} for role, segs in segmented]


# ---- accounting ----


def count_categories(segmented: list[tuple[str, list[Segment]]], render: Callable[[list[dict]], list[int]]) -> tuple[int, dict[str, int]]:
    """Exact by construction: render the prompt, then again with one more category emptied each
    time; each drop is that category's tokens, and what is left with everything empty is the
    template's own overhead. The drops telescope, so they sum to the full prompt's count."""
    present = {s.category for _, segs in segmented for s in segs if s.text}
    cats = dict.fromkeys(CATEGORIES, 0)
    if not segmented:
        return 0, cats
    total = prev = len(render(render_messages(segmented)))
    emptied: set[str] = set()
    for cat in _CONTENT_CATEGORIES:
        if cat not in present:
            continue
        emptied.add(cat)
        n = len(render(render_messages(segmented, frozenset(emptied))))
        cats[cat] = prev - n
        prev = n
    cats[OVERHEAD] = prev
    assert sum(cats.values()) == total
    return total, cats


def account_call(call: LLMCall, tok: BudgetTokenizer, cfg: BudgetConfig) -> CallBudget:
    if tok.context_window:
        window, source = tok.context_window, f"engine ({tok.name})"
    else:
        window, source = cfg.window_for(call.model)
    reserve = call.max_output_tokens if call.max_output_tokens else cfg.output_reserve
    segmented = segment_messages(call, cfg) if call.messages else []
    total, cats = count_categories(segmented, tok.render)
    b = CallBudget(call.call_id, call.step, call.model, tok.label, window, source, total, cats, reserve,
                   window - total - reserve, bool(call.messages), call.reported_input_tokens)
    b.message_tokens = _message_tokens(segmented, tok.count)
    b.warnings = call_warnings(b, segmented, tok.count, cfg)
    return b


def _message_tokens(segmented, count) -> list[dict[str, Any]]:
    out = []
    for i, (role, segs) in enumerate(segmented):
        per = {}
        for s in segs:
            if s.text and s.category != OVERHEAD:
                per[s.category] = per.get(s.category, 0) + count(s.text)
        out.append({"index": i, "role": role, "tokens": per})
    return out


# ---- warnings ----


def _chunks(text: str, size: int) -> Iterable[str]:
    """Line-aligned chunks of about `size` characters, so the same file dump or log chunks the same
    way wherever it appears."""
    buf: list[str] = []
    n = 0
    for line in text.splitlines():
        buf.append(line)
        n += len(line) + 1
        if n >= size:
            yield "\n".join(buf)
            buf, n = [], 0
    if buf:
        yield "\n".join(buf)


def chunk_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:12]


def repeated_chunks(segmented, count, cfg: BudgetConfig) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for i, (_, segs) in enumerate(segmented):
        for s in segs:
            if s.category in (OVERHEAD, TOOLS, CURRENT) or not s.text:
                continue
            for c in _chunks(s.text, cfg.repeat_chunk_chars):
                if len(c.strip()) < cfg.repeat_min_chars:
                    continue
                h = chunk_hash(c)
                e = seen.setdefault(h, {"hash": h, "messages": [], "category": s.category, "text": c})
                e["messages"].append(i)
    out = []
    for e in seen.values():
        if len(set(e["messages"])) < 2:
            continue
        tokens = count(e["text"])
        wasted = tokens * (len(e["messages"]) - 1)
        if wasted >= cfg.repeat_min_tokens:
            out.append({"hash": e["hash"], "messages": e["messages"], "category": e["category"], "chunk_tokens": tokens,
                        "wasted_tokens": wasted, "preview": e["text"][:80]})
    return sorted(out, key=lambda r: -r["wasted_tokens"])


def call_warnings(b: CallBudget, segmented, count, cfg: BudgetConfig) -> list[dict[str, Any]]:
    w: list[dict[str, Any]] = []
    win = b.context_window or 1
    cats = b.categories
    if cats[TOOL_RESULTS] > cfg.tool_results_max_share * win:
        biggest = sorted(((m["tokens"].get(TOOL_RESULTS, 0), m["index"]) for m in b.message_tokens), reverse=True)[:3]
        w.append({"kind": "tool_results_share", "message": f"tool results take {cats[TOOL_RESULTS]} tokens, "
                  f"{cats[TOOL_RESULTS] / win:.0%} of the window (threshold {cfg.tool_results_max_share:.0%})",
                  "evidence": {"tokens": cats[TOOL_RESULTS], "share": cats[TOOL_RESULTS] / win,
                               "largest": [{"message": i, "tokens": t} for t, i in biggest if t]}})
    if cats[TOOLS] > cfg.tool_definitions_max_share * win:
        w.append({"kind": "tool_definitions_share", "message": f"tool definitions take {cats[TOOLS]} tokens, "
                  f"{cats[TOOLS] / win:.0%} of the window (threshold {cfg.tool_definitions_max_share:.0%}); route to fewer tools",
                  "evidence": {"tokens": cats[TOOLS], "share": cats[TOOLS] / win}})
    reps = repeated_chunks(segmented, count, cfg)
    if reps:
        wasted = sum(r["wasted_tokens"] for r in reps)
        w.append({"kind": "repeated_content", "message": f"{len(reps)} chunks appear in more than one message, "
                  f"about {wasted} tokens sent again", "evidence": {"wasted_tokens": wasted, "chunks": reps[:10]}})
    before = _tokens_before_question(b)
    if before is not None and before >= cfg.long_context_tokens:
        w.append({"kind": "long_context_before_question", "message": f"{before} tokens come before the question; "
                  "put the question first or trim what precedes it",
                  "evidence": {"tokens_before_question": before, "threshold": cfg.long_context_tokens}})
    if b.free_tokens < 0:
        w.append({"kind": "overflow", "message": f"prompt {b.total_tokens} + reserve {b.output_reserve} exceeds the "
                  f"window {b.context_window} by {-b.free_tokens}", "evidence": {"over_by": -b.free_tokens}})
    return w


def _tokens_before_question(b: CallBudget) -> int | None:
    """Content tokens in front of the current user turn's question, including documents pasted
    into the turn itself ahead of it."""
    total = 0
    for m in b.message_tokens:
        t = m["tokens"]
        if CURRENT in t:
            return total + t.get(DOCUMENTS, 0)
        total += sum(t.values())
    return None


# ---- over a trace or session ----


@dataclass(slots=True)
class BudgetReport:
    source: str  # "trace <id>" | "session <id>"
    calls: list[CallBudget]

    def growth(self) -> list[dict[str, Any]]:
        out, prev = [], None
        for c in self.calls:
            d = {k: c.categories[k] - (prev.categories[k] if prev else 0) for k in CATEGORIES}
            out.append({"step": c.step, "call_id": c.call_id, "total_tokens": c.total_tokens,
                        "delta_total": c.total_tokens - (prev.total_tokens if prev else 0), "delta": d})
            prev = c
        return out

    def overflow(self) -> dict[str, Any]:
        """The first call that overflowed, else when the mean growth per step would overflow."""
        recorded = [c for c in self.calls if c.input_recorded]
        for c in recorded:
            if c.free_tokens < 0:
                return {"overflow_step": c.step, "projected": False}
        if len(recorded) < 2:
            return {"overflow_step": None, "projected": True, "mean_growth_per_step": None}
        first, last = recorded[0], recorded[-1]
        steps = max(1, last.step - first.step)
        growth = (last.total_tokens - first.total_tokens) / steps
        if growth <= 0:
            return {"overflow_step": None, "projected": True, "mean_growth_per_step": growth}
        more = math.floor(last.free_tokens / growth) + 1
        return {"overflow_step": last.step + more, "projected": True, "mean_growth_per_step": growth}

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "calls": [c.to_dict() for c in self.calls], "growth": self.growth(),
                **self.overflow()}


def account_calls(source: str, calls: list[LLMCall], tokenizer_for: Callable[[str | None], BudgetTokenizer],
                  cfg: BudgetConfig) -> BudgetReport:
    return BudgetReport(source, [account_call(c, tokenizer_for(c.model), cfg) for c in calls])


def budget_rows(source: str, calls: list[LLMCall], tokenizer_for: Callable[[str | None], BudgetTokenizer],
                cfg: BudgetConfig, policy: bool = True) -> list[dict[str, Any]]:
    """One plain dict per call, as `workbench budget --json` prints and the budget panel reads:
    the call's account, its growth, the overflow step and, with `policy`, what the caps trim."""
    report = account_calls(source, calls, tokenizer_for, cfg)
    over = report.overflow()
    out: list[dict[str, Any]] = []
    for c, g, raw in zip(report.calls, report.growth(), calls):
        d = {"source": source, **c.to_dict(), "delta": g["delta"], "overflow_step": over["overflow_step"],
             "overflow_projected": over["projected"]}
        if policy:
            tok = tokenizer_for(raw.model)
            plan = apply_policy(raw, tok, cfg)
            after = account_call(trimmed_call(raw, plan), tok, cfg)
            d["policy"] = {**plan.to_dict(), "after": {"total_tokens": after.total_tokens, "categories": after.categories}}
        out.append(d)
    return out


# ---- calls from traces and sessions ----

_TOOL_DEF_KEYS = ("gen_ai.tool.definitions", "gen_ai.request.tools", "llm.tools", "tools", "request.tools")


def _tool_defs(*attr_dicts: dict[str, Any]) -> list[dict[str, Any]]:
    for attrs in attr_dicts:
        for k in _TOOL_DEF_KEYS:
            v = attrs.get(k)
            if isinstance(v, str):
                try:
                    v = json.loads(v)
                except ValueError:
                    continue
            if isinstance(v, list) and v:
                return [t for t in v if isinstance(t, dict)]
    return []


def _openai_message(m: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        d["tool_calls"] = [{"id": t.call_id, "function": {"name": t.name, "arguments": t.arguments}} for t in m.tool_calls]
    if m.tool_call_id is not None:
        d["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        d["name"] = m.name
    return d


def calls_from_trace(trace: Any) -> list[LLMCall]:
    """Every llm span of a sessions.traces.model.Trace, in order of issue."""
    from sessions.traces.model import INPUT_TOKENS, REQUEST_MODEL, RESPONSE_MODEL

    results = frozenset(s.tool_call.result.strip() for s in trace.spans
                        if s.kind == "tool" and s.tool_call and s.tool_call.result and s.tool_call.result.strip())
    retrieval = frozenset(s.tool_call.call_id for s in trace.spans if s.kind == "retrieval" and s.tool_call and s.tool_call.call_id)
    out = []
    for n, s in enumerate(sorted((s for s in trace.spans if s.kind == "llm"), key=lambda s: s.seq)):
        a = s.attributes
        max_out = a.get("gen_ai.request.max_tokens")
        reported = a.get(INPUT_TOKENS)
        out.append(LLMCall(
            s.span_id, n, [_openai_message(m) for m in trace.input_for(s)], _tool_defs(a, trace.attributes),
            a.get(REQUEST_MODEL) or a.get(RESPONSE_MODEL) or trace.attributes.get(REQUEST_MODEL),
            int(max_out) if isinstance(max_out, (int, float)) else None,
            int(reported) if isinstance(reported, (int, float)) else None, results, retrieval))
    return out


def calls_from_session(store: Any, session_id: str) -> tuple[str, list[LLMCall]]:
    """Each request of a recorded session whose reply was kept as a message: its input is every
    message before that reply. Returns the full session id and the calls."""
    cur = store.cursor()
    ids = [r[0] for r in cur.execute("SELECT id FROM sessions WHERE starts_with(id, ?)", [session_id]).fetchall()]
    if not ids:
        raise BudgetError(f"no trace or session with id {session_id!r} (see `workbench traces` and `workbench sessions`)")
    if len(ids) > 1:
        raise BudgetError(f"session id {session_id!r} is ambiguous ({len(ids)} sessions match); give more characters")
    sid = ids[0]
    msgs = cur.execute("SELECT seq, role, content, request_id FROM messages WHERE session_id = ? ORDER BY seq", [sid]).fetchall()
    reqs = {r[0]: r[1:] for r in cur.execute(
        "SELECT id, model, params, prompt_tokens FROM requests WHERE session_id = ?", [sid]).fetchall()}
    out = []
    for k, (seq, role, _content, rid) in enumerate(msgs):
        if role != "assistant" or rid is None:
            continue
        model, params, prompt_tokens = reqs.get(rid, (None, None, None))
        p = json.loads(params) if isinstance(params, str) else (params or {})
        out.append(LLMCall(rid, len(out), [{"role": r, "content": c} for _, r, c, _ in msgs[:k]], [], model,
                           p.get("max_tokens"), prompt_tokens))
    return sid, out


# ---- the budget policy ----


@dataclass(slots=True)
class TrimAction:
    action: str  # "stub" (content replaced by a marker) | "drop" (messages removed) | "drop_tools"
    category: str
    messages: list[int]
    tokens: int
    detail: str = ""


@dataclass(slots=True)
class TrimPlan:
    caps: dict[str, int]
    actions: list[TrimAction]
    messages: list[dict[str, Any]]  # the trimmed list the engine gets
    tools: list[dict[str, Any]]
    over_cap_untrimmed: dict[str, int]  # categories over their cap that the policy never trims

    def to_dict(self) -> dict[str, Any]:
        return {"caps": self.caps, "actions": [asdict(a) for a in self.actions], "messages": self.messages,
                "tools": [t.get("function", t).get("name") for t in self.tools], "over_cap_untrimmed": self.over_cap_untrimmed}


def _units(messages: list[dict[str, Any]]) -> list[list[int]]:
    """Messages that must go together: an assistant turn with its tool calls and their results."""
    units: list[list[int]] = []
    for i, m in enumerate(messages):
        if m.get("role") == "tool" and units:
            units[-1].append(i)
        else:
            units.append([i])
    return units


def apply_policy(call: LLMCall, tok: BudgetTokenizer, cfg: BudgetConfig) -> TrimPlan:
    """Trim to the caps, oldest first: tool results and documents become a one-line stub, then
    whole history turns (with their tool results) are dropped, then tool definitions past the cap.
    The system prompt and the current user turn are never touched; the plan says when they are over."""
    caps = {k: v for k, v in cfg.caps.items() if v}
    msgs = copy.deepcopy(call.messages)
    tools = list(call.tools)
    actions: list[TrimAction] = []
    segmented = segment_messages(LLMCall(call.call_id, call.step, msgs, tools, tool_result_texts=call.tool_result_texts,
                                         retrieval_call_ids=call.retrieval_call_ids), cfg)
    offset = len(segmented) - len(msgs)  # a system message made for the tools comes first
    per_msg = [_message_tokens([segmented[i + offset]], tok.count)[0]["tokens"] for i in range(len(msgs))]
    for cat in (TOOL_RESULTS, DOCUMENTS):
        cap = caps.get(cat)
        total = sum(t.get(cat, 0) for t in per_msg)
        for i, t in enumerate(per_msg):
            if cap is None or total <= cap:
                break
            n = t.get(cat, 0)
            stub_text = f"[{cat.replace('_', ' ')} trimmed by budget policy: {n} tokens]"
            stub = tok.count(stub_text)
            if n > stub and set(t) == {cat}:  # a stub longer than the result would add tokens
                msgs[i]["content"] = stub_text
                per_msg[i] = {cat: stub}
                total -= n - stub
                actions.append(TrimAction("stub", cat, [i], n - stub))
    cap = caps.get(HISTORY)
    if cap is not None:
        keep = set(range(len(msgs)))
        total = sum(t.get(HISTORY, 0) for t in per_msg)
        for unit in _units(msgs):
            if total <= cap:
                break
            kinds = {k for i in unit for k in per_msg[i]}
            if HISTORY not in kinds or kinds & {SYSTEM, CURRENT} or msgs[unit[0]].get("role") == "system":
                continue
            freed = sum(sum(per_msg[i].values()) for i in unit)
            total -= sum(per_msg[i].get(HISTORY, 0) for i in unit)
            keep -= set(unit)
            actions.append(TrimAction("drop", HISTORY, unit, freed))
        msgs = [m for i, m in enumerate(msgs) if i in keep]
    cap = caps.get(TOOLS)
    if cap is not None and tools:
        kept, used = [], 0
        for t in tools:
            n = tok.count(tool_json(t))
            if used + n <= cap:
                kept.append(t)
                used += n
        dropped = [t.get("function", t).get("name") for t in tools if t not in kept]
        if dropped:
            freed = sum(tok.count(tool_json(t)) for t in tools) - used
            actions.append(TrimAction("drop_tools", TOOLS, [], freed, ", ".join(dropped)))
        tools = kept
    over = {}
    for cat in (SYSTEM, CURRENT):
        n = sum(t.get(cat, 0) for t in per_msg)
        if cat in caps and n > caps[cat]:
            over[cat] = n
    return TrimPlan(caps, actions, msgs, tools, over)


def trimmed_call(call: LLMCall, plan: TrimPlan) -> LLMCall:
    return LLMCall(call.call_id, call.step, plan.messages, plan.tools, call.model, call.max_output_tokens, None,
                   call.tool_result_texts, call.retrieval_call_ids)
