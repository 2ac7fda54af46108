"""`workbench spec sweep --quick` on a tiny random model: cells stored as bench runs in DuckDB,
speedups and crossovers printed; bad options are one line, exit 2."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("tiny-spec-cli")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=1, bos_token_id=0, pad_token_id=0)
    LlamaForCausalLM(cfg).save_pretrained(str(d))
    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2, **{f"w{i}": i for i in range(3, 300)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>").save_pretrained(str(d))
    return d


def test_spec_sweep_quick_stores_cells_and_reports_crossover(wb, db_path, tiny_model):
    r = wb("--db", db_path, "--model", str(tiny_model), "spec", "sweep", "--quick", "--workloads", "code-edit,json", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    cells = out["cells"]
    assert {(c["workload"], c["batch_size"], c["speculation"]) for c in cells} == {
        (w, b, m) for w in ("code-edit", "json") for b in (1, 2) for m in ("off", "ngram", "draft", "auto")}
    assert all(c["identical_to_off"] for c in cells if c["speculation"] != "off")
    assert set(out["crossover"]) == {"code-edit", "json"}
    import duckdb

    con = duckdb.connect(db_path, read_only=True)
    n, runs = con.execute("SELECT count(*), count(DISTINCT run_id) FROM spec_sweep_cells").fetchone()
    assert n == 16 and runs == 16
    assert con.execute("SELECT count(*) FROM bench_runs WHERE id IN (SELECT run_id FROM spec_sweep_cells)").fetchone()[0] == 16
    con.close()
    r = wb("--db", db_path, "--model", str(tiny_model), "spec", "sweep", "--quick", "--max-tokens", "6")
    assert r.returncode == 0, r.stderr
    assert "crossover" in r.stdout and "speedup vs off" in r.stdout


def test_spec_sweep_bad_options_are_one_line(wb, db_path, tiny_model):
    r = wb("--db", db_path, "--model", str(tiny_model), "spec", "sweep", "--modes", "ngram,auto")
    assert r.returncode == 2 and "needs the 'off' mode" in r.stderr and "Traceback" not in r.stderr


def test_spec_sweep_repeats_interleave_modes_and_report_the_median(wb, db_path, tiny_model):
    r = wb("--db", db_path, "--model", str(tiny_model), "spec", "sweep", "--quick", "--workloads", "json",
           "--modes", "off,auto", "--repeats", "3", "--json")
    assert r.returncode == 0, r.stderr
    cells = json.loads(r.stdout)["cells"]
    assert len(cells) == 4  # 1 workload x batch 1, 2 x 2 modes: repeats merge into one cell each
    for c in cells:
        assert len(c["throughputs"]) == 3 and c["output_throughput"] == sorted(c["throughputs"])[1]
    import duckdb

    con = duckdb.connect(db_path, read_only=True)
    assert con.execute("SELECT count(*) FROM bench_runs WHERE workload = 'json'").fetchone()[0] == 12
    con.close()
    r = wb("--db", db_path, "--model", str(tiny_model), "spec", "sweep", "--repeats", "0")
    assert r.returncode == 2 and "--repeats" in r.stderr and "Traceback" not in r.stderr


def test_spec_sweep_on_the_public_tuning_half_reports_cpu_time(wb, db_path, tiny_model):
    r = wb("--db", db_path, "--model", str(tiny_model), "spec", "sweep", "--quick", "--workload-set", "public-tune",
           "--modes", "off,auto", "--batch-sizes", "1", "--min-requests", "2", "--json")
    assert r.returncode == 0, r.stderr
    cells = json.loads(r.stdout)["cells"]
    assert {c["workload"] for c in cells} == {"public-code-tune", "public-chat-tune"}
    assert all(c["cpu_ms_per_token"] > 0 and len(c["cpu_ms_per_tokens"]) == 1 for c in cells)
    assert all(c["cpu_ratio"] == 1.0 for c in cells if c["speculation"] == "off")
    r = wb("--db", db_path, "--model", str(tiny_model), "spec", "sweep", "--workload-set", "public-all")
    assert r.returncode == 2 and "unknown workload set" in r.stderr and "Traceback" not in r.stderr
