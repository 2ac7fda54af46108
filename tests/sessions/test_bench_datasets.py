"""The vLLM datasets of `workbench bench`: random prompts of exact token lengths, ShareGPT JSON (a
real sample, see fixtures/datasets/SOURCES) filtered and shuffled by the seed, prefix repetition
sharing its prefixes; one run through the CLI counts exactly the tokens it sent."""
import json
import random
from pathlib import Path

import pytest

from sessions.bench import WorkloadOptions, build_workload
from sessions.errors import SessionsError

SHAREGPT = Path(__file__).parent / "fixtures" / "datasets" / "sharegpt_fastchat_dummy.json"
pytestmark = pytest.mark.slow  # loads the model's tokenizer through transformers


@pytest.fixture(scope="module")
def tok():
    from engine.tokenizer import load_tokenizer

    return load_tokenizer("smollm2-135m")


def test_random_prompts_have_exact_lengths_and_follow_the_seed(tok):
    o = WorkloadOptions(8, 16, seed=3, tokenizer=tok, input_len=64, range_ratio=0.25, prefix_len=8)
    items = build_workload("random", o)
    assert [i.prompt for i in items] == [i.prompt for i in build_workload("random", o)]
    assert [i.prompt for i in items] != [i.prompt for i in build_workload("random", WorkloadOptions(
        8, 16, seed=4, tokenizer=tok, input_len=64, range_ratio=0.25, prefix_len=8))]
    for it in items:
        assert 8 + 48 <= len(it.prompt_token_ids) <= 8 + 80 and 12 <= it.max_tokens <= 20
        assert tok.decode(it.prompt_token_ids) == it.prompt
    # the shared prefix (its last token may merge with the next one when the text is encoded again)
    assert len({tuple(i.prompt_token_ids[:6]) for i in items}) == 1
    fixed = build_workload("random", WorkloadOptions(4, 16, tokenizer=tok, input_len=50))
    assert [len(i.prompt_token_ids) for i in fixed] == [50] * 4 and {i.max_tokens for i in fixed} == {16}


def test_sharegpt_first_turns_shuffled_by_the_seed(tok):
    items = build_workload("sharegpt", WorkloadOptions(10, 64, seed=0, tokenizer=tok, dataset_path=str(SHAREGPT)))
    data = json.loads(SHAREGPT.read_text())
    random.seed(0)
    random.shuffle(data)  # vLLM's order for seed 0
    assert [i.prompt for i in items] == [e["conversations"][0]["value"] for e in data[:10]]
    assert [i.max_tokens for i in items] == [len(tok(e["conversations"][1]["value"]).input_ids) for e in data[:10]]
    fixed = build_workload("sharegpt", WorkloadOptions(40, 64, tokenizer=tok, dataset_path=str(SHAREGPT), output_len=32))
    assert len(fixed) == 40 and {i.max_tokens for i in fixed} == {32}  # 24 entries, oversampled


def test_sharegpt_file_problems_are_clear(tok, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    for path, msg in ((None, "needs --dataset-path"), (str(tmp_path / "none.json"), "cannot read"),
                      (str(bad), "expected a JSON list")):
        with pytest.raises(SessionsError, match=msg):
            build_workload("sharegpt", WorkloadOptions(4, 8, tokenizer=tok, dataset_path=path))
    with pytest.raises(SessionsError, match="--tokenizer"):
        build_workload("random", WorkloadOptions(4, 8))


def test_prefix_repetition_shares_prefixes(tok):
    items = build_workload("prefix-repetition", WorkloadOptions(12, 8, tokenizer=tok, prefix_len=32, suffix_len=16,
                                                                num_prefixes=3))
    assert len(items) == 12 and all(len(i.prompt_token_ids) == 48 for i in items)
    groups = {}
    for it in items:
        groups.setdefault(it.name, set()).add(tuple(it.prompt_token_ids[:32]))
    assert len(groups) == 3 and all(len(p) == 1 for p in groups.values())  # ids kept as made, not re-encoded
    assert len({tuple(i.prompt_token_ids[32:]) for i in items}) == 12


def test_bench_cli_random_counts_what_it_sent(wb, tmp_path):
    r = wb("--db", str(tmp_path / "b.duckdb"), "bench", "--workload", "random", "--input-len", "32",
           "--max-tokens", "4", "--ignore-eos", "--requests", "3", "--concurrency", "3", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["completed"] == 3 and rep["total_input_tokens"] == 3 * 32 and rep["total_output_tokens"] == 3 * 4
