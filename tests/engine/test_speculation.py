"""Speculative decoding on tiny random models: greedy output token-identical to speculation off in
every mode (in one continuous batch with plain requests, chunked, preempted), KV rollback and the
prefix cache, rejection sampling keeping the target distribution, figures, and the auto policy."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from engine import Engine, EngineError, SamplingParams, StepEvent  # noqa: E402
from engine.model_source import ModelSpec  # noqa: E402
from engine.torch.config import TorchConfig  # noqa: E402
from engine.torch.proposers import NgramProposer  # noqa: E402
from engine.torch.sequence import Sequence  # noqa: E402
from engine.torch.spec_policy import SpecPolicy, expected_accepted  # noqa: E402
from engine.torch.speculation import SpecStats, verify_greedy, verify_sampling  # noqa: E402
from engine.types import Request, RequestMetrics  # noqa: E402

VOCAB = 300


def _save_tiny(d, vocab: int, layers: int, seed: int, std: float) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=False, eos_token_id=1, bos_token_id=0, pad_token_id=0)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, std)
    model.save_pretrained(str(d))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("spec-target")
    _save_tiny(d, VOCAB, 4, 0, 0.2)
    return d


@pytest.fixture(scope="module")
def draft_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("spec-draft")
    _save_tiny(d, VOCAB, 1, 1, 0.2)
    return d


def backend(path, **options):
    from engine.torch.backend import TorchBackend

    options.setdefault("measure_bandwidth", False)
    return TorchBackend(ModelSpec("tiny", "hf_dir", str(path)), TorchConfig(device="cpu", **options))


def prompts(n: int, seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        p = torch.randint(3, VOCAB, (int(torch.randint(5, 40, (1,), generator=g)),), generator=g).tolist()
        out.append(p + p[:7] + p)  # repeats: prompt lookup finds matches
    return out


def run(eng: Engine, ps, n: int | list[int], **kw):
    ns = n if isinstance(n, list) else [n] * len(ps)
    hs = [eng.submit("", SamplingParams(max_tokens=k, temperature=0, ignore_eos=True, **kw), prompt_token_ids=p)
          for p, k in zip(ps, ns)]
    return [h.result(timeout=120) for h in hs]


@pytest.fixture(scope="module")
def reference(tiny_dir):
    with Engine(backend(tiny_dir, speculation="off"), None, "torch") as eng:
        return [r.token_ids for r in run(eng, prompts(8), 24)]


# ---- units ----

def _seq(tokens: list[int]) -> Sequence:
    return Sequence(Request("s", "", SamplingParams(temperature=0), tokens, RequestMetrics(0)))


def test_ngram_proposer_takes_the_latest_longest_match():
    prop = NgramProposer(max_n=3, min_n=2)
    seq = _seq([1, 2, 3, 4, 9, 2, 3, 5, 6, 7, 1, 2, 3])
    assert prop.propose(seq, 3) == [4, 9, 2]  # the longest match wins: "1 2 3" (not "2 3" before 5 6 7)
    seq.token_ids[-1] = 8
    assert prop.propose(seq, 3) == []
    seq.token_ids.extend([1, 2])  # "8 1 2" unseen, "1 2" latest at index 10 -> 8 1 2
    assert prop.propose(seq, 4) == [8, 1, 2]


def test_verify_greedy_accepts_the_matching_prefix_and_adds_the_target_token():
    assert verify_greedy([5, 6, 7], [5, 6, 9, 4]) == (2, [5, 6, 9])
    assert verify_greedy([5, 6], [5, 6, 8]) == (2, [5, 6, 8])
    assert verify_greedy([5], [1, 2]) == (0, [1])


def test_spec_stats_by_position():
    st = SpecStats()
    st.add(3, 1)
    st.add(2, 2)
    d = st.to_dict()
    assert d["acceptance_rate"] == pytest.approx(3 / 5)
    assert d["mean_accepted_length"] == pytest.approx(1 + 3 / 2)
    assert d["acceptance_by_position"] == [1.0, 0.5, 0.0]


def test_rejection_sampling_keeps_the_target_distribution():
    """Chi-square: outputs follow p, for a sampled draft with its q and for a one-hot draft; the
    draft's own distribution q is rejected by the same test (so the test can fail)."""
    from scipy.stats import chisquare

    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.05, 0.3, 0.1, 0.25, 0.05, 0.25])
    q = torch.tensor([0.4, 0.05, 0.2, 0.05, 0.25, 0.05])
    n = 6000
    firsts_q, firsts_1, drafts = [0] * 6, [0] * 6, [0] * 6
    for _ in range(n):
        x = int(torch.multinomial(q, 1, generator=g))
        drafts[x] += 1
        _, toks = verify_sampling([x], torch.stack([p, p]), g, q[None])
        firsts_q[toks[0]] += 1
        _, toks = verify_sampling([2], torch.stack([p, p]), g)  # deterministic drafter
        firsts_1[toks[0]] += 1
    want = (p.double() / p.double().sum() * n).tolist()
    assert chisquare(firsts_q, want).pvalue > 1e-3
    assert chisquare(firsts_1, want).pvalue > 1e-3
    assert chisquare(drafts, want).pvalue < 1e-9


class S:
    """What the policy reads of a sequence."""

    def __init__(self, sid):
        self.seq_id = sid


def settle(pol: SpecPolicy, cands, batch: int, cost) -> tuple[dict, int]:
    """Plan steps until the policy stops measuring, feeding it step times from cost(rows).
    Returns the first real plan and how many measuring steps it took."""
    for n in range(12):
        got = pol.plan(cands, batch, False)
        if "measuring" not in pol.reason:
            return got, n
        drafts = sum(got.values())
        pol.observe_step(batch, cost(batch + drafts), drafts, 0.0, 0)
    raise AssertionError(f"still measuring: {pol.reason}")


def test_auto_policy_drafts_when_it_pays_and_stops_when_it_does_not():
    pol = SpecPolicy("auto", k_max=6)
    seqs = [S(f"r{i}") for i in range(8)]
    for s in seqs:
        for _ in range(6):
            pol.observe_acceptance(s.seq_id, 4, 4)  # a copying request: high acceptance
    assert pol.plan([(seqs[0], 6)], 1, False) == {} and "plain step" in pol.reason
    cheap = lambda rows: 0.100 + 0.004 * (rows - 1)  # noqa: E731  verify: +4 ms per draft token
    got, probes = settle(pol, [(seqs[0], 6)], 1, cheap)
    assert 2 <= probes <= 4  # the plain step, then up to three verify costs
    assert pol.decision == "on" and got["r0"] >= 3 and pol.predicted_speedup > 1.8
    # batch 8: a verify token costs as much as a whole plain step -> off, with the reason
    dear = lambda rows: 0.120 * (1 + (rows - 8))  # noqa: E731
    got, _ = settle(pol, [(s, 6) for s in seqs], 8, dear)
    assert got == {} and pol.decision == "off" and "predicted" in pol.reason and "at batch 8" in pol.reason
    assert expected_accepted(0.5, 2) == pytest.approx(0.75)


def test_policy_learns_a_step_time_curve_that_is_not_linear():
    """On a CPU a GEMM over 9 rows costs about what 16 rows cost: the policy predicts by
    interpolating measured points, not by a per-draft-token constant."""
    pol = SpecPolicy("auto", k_max=8)
    for rows, ms in ((1, 20), (3, 38), (9, 52), (16, 54)):
        pol.observe_step(1, ms / 1e3, rows - 1, 0.0, 0)
    assert pol.step_time(1) == pytest.approx(0.020)
    assert pol.step_time(12) == pytest.approx(0.052 + (0.054 - 0.052) * 3 / 7)
    assert pol.step_time(24) == pytest.approx(0.054 + 8 * (0.054 - 0.052) / 7)  # the last slope on
    assert 0.038 < pol.step_time(5) < 0.052
    assert pol.to_dict()["spec_step_ms_by_rows"]["9"] == pytest.approx(52)


def test_policy_values_long_drafts_when_accepted_drafts_come_in_runs():
    """Prompt lookup either copies a span (all drafts accepted) or misses at once. A per-token
    rate calls k=1 best; the per-position survival the policy learns calls for long drafts."""
    pol = SpecPolicy("auto", k_max=8)
    s = S("r")
    for i in range(40):
        pol.observe_acceptance("r", 8, 8 if i % 4 else 0)  # runs of three full accepts, then a miss
    assert pol.survival.cond(1) > 0.95 and pol.survival.cond(7) > 0.95
    first = pol._alpha(s)
    assert expected_accepted(first, 8, pol.survival) > 3 * expected_accepted(0.5, 8) / 2
    pol.plan([(s, 8)], 1, False)
    pol.observe_step(1, 0.040, 0, 0.0, 0)
    got, _ = settle(pol, [(s, 8)], 1, lambda rows: 0.040 + 0.004 * (rows - 1))
    assert got == {"r": 8} and pol.decision == "on"
    assert pol.to_dict()["spec_draft_survival"][0] > 0.95


# ---- end to end on the tiny model ----

@pytest.mark.parametrize("mode,options", [
    ("ngram", {"spec_options": {"ngram_min": 1}}),
    ("self", {"spec_options": {"self_layers": 1}}),  # a poor draft: mostly rejections
    ("self", {"spec_options": {"self_layers": 4}}),  # the whole model: every draft accepted
    ("auto", {}),
])
def test_greedy_output_is_identical_to_speculation_off(tiny_dir, reference, mode, options):
    ps = prompts(8)
    # a small token budget: verify rows are cut short, prompts chunked; block size 4: drafts
    # cross block boundaries and get rolled back across them
    with Engine(backend(tiny_dir, speculation=mode, block_size=4, max_num_batched_tokens=48, **options),
                None, "torch") as eng:
        events: list = []
        eng.add_listener(events.append)
        got = run(eng, ps, 24)
        st = eng.stats()
    assert [r.token_ids for r in got] == reference
    assert st["kv_blocks_used"] == 0
    assert st["speculation_mode"] == mode and "speculation_reason" in st
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert sum(e.spec_draft_tokens for e in steps) == st["spec_draft_tokens"] == sum(r.metrics.spec_draft_tokens for r in got)
    assert sum(e.spec_accepted_tokens for e in steps) == st["spec_accepted_tokens"]
    assert all(e.note and e.note.startswith("spec ") for e in steps)
    if mode != "auto":
        assert st["spec_draft_tokens"] > 0
    if options.get("spec_options", {}).get("self_layers") == 4:
        assert st["acceptance_rate"] == 1.0 and st["mean_accepted_length"] > 3
        assert len(steps) < 24  # several tokens per step
    if mode == "ngram":
        assert sum(r.metrics.spec_verify_steps > 0 for r in got) >= 2


def test_speculating_and_plain_requests_share_a_step(tiny_dir, reference):
    ps = prompts(8)
    with Engine(backend(tiny_dir, speculation="self", spec_options={"self_layers": 4}), None, "torch") as eng:
        events: list = []
        eng.add_listener(events.append)
        # a seeded sampled request: drafted too (fixed mode), in the same batch as greedy ones
        mixed = [eng.submit("", SamplingParams(max_tokens=24, temperature=0, ignore_eos=True), prompt_token_ids=p)
                 for p in ps[:4]]
        sampled = eng.submit("", SamplingParams(max_tokens=24, temperature=0.8, seed=1, ignore_eos=True),
                             prompt_token_ids=ps[5])
        got = [h.result(60) for h in mixed]
        assert len(sampled.result(60).token_ids) == 24
    assert [r.token_ids for r in got] == reference[:4]
    shared = [e for e in events if isinstance(e, StepEvent) and e.batch_size > 1 and e.spec_draft_tokens]
    assert shared


def test_rollback_keeps_the_prefix_cache_clean_and_preemption_works(tiny_dir, reference):
    ps = prompts(8)
    b = backend(tiny_dir, speculation="self", spec_options={"self_layers": 1}, block_size=4)
    bad: list = []

    def check(ev):  # in the engine thread, after every step: registered blocks hold committed tokens
        if not isinstance(ev, StepEvent):
            return
        bm = b.block_manager
        for seq in b.scheduler.running:
            for i, bid in enumerate(seq.block_table):
                blk = bm.blocks[bid]
                if blk.hash != -1 and blk.token_ids != tuple(seq.token_ids[i * 4:(i + 1) * 4]):
                    bad.append((seq.seq_id, i))
            assert len(seq.block_table) <= bm.blocks_for(seq.num_tokens)

    with Engine(b, None, "torch") as eng:
        eng.add_listener(check)
        first = run(eng, ps, 24)
        # prompts that extend into the first answers: their blocks come from the prefix cache
        again = run(eng, [p + r.token_ids[:13] for p, r in zip(ps, first)], 8)
    assert not bad
    assert [r.token_ids for r in first] == reference
    assert all(r.metrics.cached_prompt_tokens > len(p) - 4 for p, r in zip(ps, again))
    with Engine(backend(tiny_dir, speculation="off"), None, "torch") as off:
        want = run(off, [p + r.token_ids[:13] for p, r in zip(ps, first)], 8)
    assert [r.token_ids for r in again] == [r.token_ids for r in want]
    tight = -(-(max(map(len, ps)) + 24) // 4) + 3
    with Engine(backend(tiny_dir, speculation="self", spec_options={"self_layers": 4}, block_size=4,
                        num_kv_blocks=tight, enable_prefix_caching=False), None, "torch") as eng:
        got = run(eng, ps, 24)
        assert eng.stats()["num_preemptions"] > 0
    assert [r.token_ids for r in got] == reference


def test_draft_model_proposer(tiny_dir, draft_dir, reference):
    with Engine(backend(tiny_dir, draft=str(tiny_dir), speculation="draft", block_size=4), None, "torch") as eng:
        same = run(eng, prompts(8), 24)  # the target as its own draft: everything accepted
        st = eng.stats()
    assert [r.token_ids for r in same] == reference
    assert st["spec_proposer"] == "draft" and st["acceptance_rate"] == 1.0
    with Engine(backend(tiny_dir, draft=str(draft_dir), speculation="draft"), None, "torch") as eng:
        other = run(eng, prompts(8), 24)
        assert eng.stats()["acceptance_rate"] < 0.9
    assert [r.token_ids for r in other] == reference


def test_sampling_through_the_engine_keeps_the_target_distribution(tmp_path):
    """A tiny model (vocab 12): the second output token given the first, with a poor self-draft
    (mostly rejections), against the model's own softmax; chi-square."""
    from scipy.stats import chisquare
    from transformers import AutoModelForCausalLM

    _save_tiny(tmp_path, 12, 2, 3, 0.15)
    prompt = [3, 5, 7, 2, 9]
    sp = SamplingParams(max_tokens=3, temperature=1.0, ignore_eos=True)  # 1 draft after the first token
    with Engine(backend(tmp_path, speculation="self", spec_options={"self_layers": 1, "k_max": 2}), None, "torch") as eng:
        hs = [eng.submit("", sp, prompt_token_ids=prompt) for _ in range(2500)]
        outs = [h.result(120).token_ids for h in hs]
        assert eng.stats()["spec_draft_tokens"] > 1000
    first = max(range(12), key=lambda t: sum(o[0] == t for o in outs))
    seconds = [o[1] for o in outs if o[0] == first]
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32).eval()
    with torch.inference_mode():
        p = torch.softmax(hf(torch.tensor([prompt + [first]])).logits[0, -1].float(), -1)
    counts = [seconds.count(t) for t in range(12)]
    want = (p.double() / p.double().sum() * len(seconds)).tolist()
    big = [i for i in range(12) if want[i] >= 5]  # chi-square wants expected counts >= 5
    rest_c, rest_w = sum(counts) - sum(counts[i] for i in big), sum(want) - sum(want[i] for i in big)
    obs, exp = [counts[i] for i in big] + [rest_c], [want[i] for i in big] + [rest_w]
    assert chisquare(obs, exp).pvalue > 1e-3


def test_bad_speculation_options_are_one_clear_error(tiny_dir):
    with pytest.raises(EngineError, match="unknown speculation"):
        backend(tiny_dir, speculation="turbo")
    with pytest.raises(EngineError, match="does not use a draft"):
        backend(tiny_dir, speculation="ngram", draft=str(tiny_dir))


def test_measured_step_costs_survive_a_speculation_switch(tiny_dir):
    b = backend(tiny_dir, speculation="auto")
    b.speculator.policy.observe_step(1, 0.02, 0, 0.0, 0)
    b.speculator.policy.observe_step(1, 0.03, 8, 0.0, 0)
    b.set_speculation("off")
    b.set_speculation("auto")
    pol = b.speculator.policy
    assert sorted(pol.plain_rows) == [1] and sorted(pol.rows) == [9] and pol.step_time(9) == pytest.approx(0.03)
    assert pol.plan([(S("r"), 8)], 1, False) == {} and "plain step" in pol.reason  # re-measured first


# ---- logprobs ----

def _reference_logprobs(path, prompt: list[int], out: list[int]) -> torch.Tensor:
    """transformers' log-softmax at each output position, teacher-forced on prompt + output."""
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    with torch.inference_mode():
        logits = hf(torch.tensor([prompt + out])).logits[0, len(prompt) - 1 : -1]
    return torch.log_softmax(logits.float(), dim=-1)


@pytest.mark.parametrize("mode,options", [
    ("off", {}),
    ("self", {"spec_options": {"self_layers": 4}}),  # every draft accepted: tokens come from verify rows
])
def test_logprobs_are_the_models_own_on_plain_and_verified_tokens(tiny_dir, mode, options):
    p = prompts(1, seed=5)[0]
    with Engine(backend(tiny_dir, speculation=mode, block_size=4, **options), None, "torch") as eng:
        events: list = []
        eng.add_listener(events.append)
        r = eng.submit("", SamplingParams(max_tokens=12, temperature=0, ignore_eos=True, logprobs=3),
                       prompt_token_ids=p).result(timeout=120)
    if mode != "off":
        assert r.metrics.spec_accepted_tokens > 0
    ref = _reference_logprobs(tiny_dir, p, r.token_ids)
    assert [t.token_id for t in r.logprobs] == r.token_ids
    for k, t in enumerate(r.logprobs):
        assert t.logprob == pytest.approx(ref[k, t.token_id].item(), abs=1e-4)
        top = torch.topk(ref[k], 3)
        assert [i for i, _ in t.top] == top.indices.tolist()
        assert [v for _, v in t.top] == pytest.approx(top.values.tolist(), abs=1e-4)
        assert t.top[0][0] == t.token_id  # greedy: the chosen token is the likeliest
    streamed = [lp for e in events if getattr(e, "logprobs", None) for lp in e.logprobs]
    assert [t.token_id for t in streamed] == r.token_ids


def test_logprobs_only_when_asked_and_in_range(tiny_dir):
    p = prompts(1, seed=6)[0]
    with Engine(backend(tiny_dir, speculation="off"), None, "torch") as eng:
        assert eng.submit("", SamplingParams(max_tokens=3, temperature=0), prompt_token_ids=p).result(60).logprobs is None
        r = eng.submit("", SamplingParams(max_tokens=3, temperature=0.9, seed=1, logprobs=0), prompt_token_ids=p).result(60)
        assert len(r.logprobs) == len(r.token_ids) and all(t.top == [] and t.logprob <= 0 for t in r.logprobs)
    with pytest.raises(EngineError, match="logprobs"):
        SamplingParams(logprobs=21)
