"""The prefix-cache inspector on token ids (block manager + scheduler, no model): blocks hit, the
first miss, and the cause (a differing token early or late, an evicted block, a new prefix)."""
from __future__ import annotations

from engine.torch.block_manager import BlockManager
from engine.torch.config import TorchConfig
from engine.torch.prefix_inspector import PrefixInspector, common_prefix, describe
from engine.torch.scheduler import Scheduler
from engine.torch.sequence import Sequence
from engine.types import Request, RequestMetrics, SamplingParams

BS = 4


def request(rid: str, tokens: list[int]) -> Request:
    return Request(rid, "", SamplingParams(max_tokens=4, temperature=0), tokens,
                   RequestMetrics(arrival_ns=0, prompt_tokens=len(tokens)))


def run_prompt(sch: Scheduler, rid: str, tokens: list[int]) -> dict:
    """Admit, 'compute' the whole prompt (as the backend's step would), finish: blocks get cached."""
    seq = Sequence(request(rid, tokens))
    sch.add(seq)
    step = sch.schedule()
    assert [s.seq.seq_id for s in step] == [rid]
    sch.postprocess(step)
    sch.free(rid)
    return seq.request.metrics.prefix_report


def scheduler(num_blocks: int = 64) -> Scheduler:
    return Scheduler(TorchConfig(max_num_seqs=8, max_num_batched_tokens=512, max_model_len=512),
                     BlockManager(num_blocks, BS))


def system(stamp: int, early: bool) -> list[int]:
    """A 40-token 'system prompt' whose timestamp token sits at position 2 or 30."""
    body = list(range(100, 140))
    body[2 if early else 30] = stamp
    return body


def test_timestamp_early_breaks_the_match_at_its_block():
    sch = scheduler()
    first = run_prompt(sch, "a", system(914, early=True) + [7, 8, 9])
    assert first["blocks_hit"] == 0 and first["cause"] == "no earlier prompt shares its first tokens"
    rep = run_prompt(sch, "b", system(915, early=True) + [7, 8, 9])
    assert rep["blocks_queried"] == 10 and rep["blocks_hit"] == 0
    assert rep["first_miss_block"] == 0 and rep["first_miss_token"] == 0 and rep["cause"] == "differs"
    cand = rep["candidate"]
    assert cand["request_id"] == "a" and cand["diff_token"] == 2 and cand["window_start"] == 0
    assert cand["cached_ids"][2] == 914 and cand["now_ids"][2] == 915
    assert cand["cached_text"] is None  # no tokenizer here
    assert describe(rep).startswith("prefix cache: 0/10 blocks hit; first miss at token 0: differs from request a at token 2")


def test_timestamp_late_keeps_the_blocks_before_it():
    sch = scheduler()
    run_prompt(sch, "a", system(914, early=False) + [7, 8, 9])
    rep = run_prompt(sch, "b", system(915, early=False) + [7, 8, 9])
    assert rep["blocks_hit"] == 7 and rep["first_miss_block"] == 7 and rep["first_miss_token"] == 28
    assert rep["cause"] == "differs" and rep["candidate"]["diff_token"] == 30
    assert rep["hit_block_ids"] == rep["hit_block_ids"][:7] and len(set(rep["hit_block_ids"])) == 7
    assert rep["candidate"]["cached_ids"][30 - 24] == 914  # window starts 6 tokens before the change
    same = run_prompt(sch, "c", system(915, early=False) + [7, 8, 9])
    assert same["blocks_hit"] == same["blocks_queried"] == 10 and same["cause"] == "all hit"
    assert same["first_miss_token"] is None and describe(same) == "prefix cache: 10/10 blocks hit"


def test_an_evicted_block_is_told_apart_from_a_differing_one():
    sch = scheduler(num_blocks=12)
    prompt = list(range(200, 240))  # 10 blocks + 1
    run_prompt(sch, "a", prompt + [1])
    run_prompt(sch, "filler", list(range(300, 340)))  # takes most free blocks: a's tail blocks are reused
    rep = run_prompt(sch, "b", prompt + [2])
    assert rep["blocks_hit"] < 10 and rep["cause"] == "evicted"
    assert rep["candidate"]["request_id"] == "a" and rep["candidate"]["common_prefix_tokens"] == 40
    assert "evicted: request a had the same 40 tokens" in describe(rep)


def test_reports_only_on_first_admission_and_the_lru_is_bounded():
    insp = PrefixInspector(block_size=BS, capacity=3)
    for i in range(5):
        insp.admit(f"r{i}", [i] * 9, [])
    assert list(insp.recent) == ["r2", "r3", "r4"]
    rep = insp.report("r9", [4] * 8 + [5], [])
    assert rep["candidate"]["request_id"] == "r4" and rep["candidate"]["diff_token"] == 8
    assert common_prefix([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7], step=4) == 5
    bm = BlockManager(8, BS, enable_prefix_caching=False)
    assert bm.inspector is None


def test_the_decoder_quotes_the_text_around_the_difference():
    insp = PrefixInspector(block_size=BS, decode=lambda ids: " ".join(f"t{i}" for i in ids))
    insp.admit("a", [1, 2, 3, 4, 5, 6, 7, 8, 9], [])
    rep = insp.report("b", [1, 2, 3, 4, 5, 0, 7, 8, 9], [])
    assert rep["candidate"]["cached_text"] == "t1 t2 t3 t4 t5 t6 t7 t8 t9"
    assert "cached '...t1 t2 t3 t4 t5 t6 t7 t8 t9...' vs now '...t1 t2 t3 t4 t5 t0 t7 t8 t9...'" in describe(rep)
