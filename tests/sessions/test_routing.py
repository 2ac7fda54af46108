"""Tool routing on the labelled set with the real all-MiniLM-L6-v2: top-5 accuracy, stability as the
tool list grows, abstention on turns no tool fits, and the tool-definition tokens saved."""
import json
from pathlib import Path

import pytest

from sessions.routing import (
    CachedEmbedder, RoutingError, ToolRouter, calibrate_threshold, evaluate, load_queries, load_tools, subset_accuracy,
    tool_name,
)

DATA = Path(__file__).resolve().parents[2] / "sessions" / "data"


@pytest.fixture(scope="module")
def emb():
    from engine.embeddings import load_embedder

    return CachedEmbedder(load_embedder())


@pytest.fixture(scope="module")
def labelled():
    tools = load_tools(DATA / "routing_tools.json")
    return tools, load_queries(DATA / "routing_queries.jsonl", {tool_name(t) for t in tools})


@pytest.fixture(scope="module")
def full_eval(labelled, emb, embedded_engine):
    tools, queries = labelled
    return evaluate(tools, queries, k=5, embedder=emb, count_tokens=embedded_engine.count_tokens)


def test_labelled_set_shape(labelled):
    tools, queries = labelled
    assert len(tools) >= 60 and len(queries) >= 300
    assert sum(q["tool"] is None for q in queries) >= 30
    assert len({q["query"] for q in queries}) == len(queries)
    used = {q["tool"] for q in queries if q["tool"]}
    assert used == {tool_name(t) for t in tools}  # every tool is asked for


def test_top5_accuracy_and_tokens_saved(full_eval):
    m, routes = full_eval
    assert m["calibrated"] and m["k"] == 5
    assert m["topk"] >= 0.95  # abstentions count as misses; thresholds cross-validated
    assert m["topk_ranking"] >= m["topk"] and m["top1"] <= m["topk"]
    assert m["tokens_saved_fraction"] >= 0.80
    assert m["abstain_precision"] >= 0.6 and m["abstain_recall"] > 0.2
    for r in routes:
        assert r.tokens_sent == (0 if r.abstained else r.tokens_sent) <= r.tokens_all
        assert len(r.tools) in (0, 5)


def test_accuracy_holds_from_20_to_all_tools(labelled, emb, full_eval):
    tools, queries = labelled
    sizes = subset_accuracy(tools, queries, [20, len(tools)], k=5, threshold=full_eval[0]["abstain_threshold"], embedder=emb)
    assert sizes[-1]["tools"] >= 60
    assert sizes[0]["topk"] - sizes[-1]["topk"] <= 0.05


def test_routes_and_abstains(labelled, emb):
    tools, _ = labelled
    router = ToolRouter(tools, 5, 0.2, emb)
    assert router.route("Is it going to pour in Oslo on Saturday?").tools[0] == "get_weather_forecast"
    assert "track_package" in router.route("my parcel still hasn't come, here's the code 1Z999").tools
    assert router.route("tell me a joke about penguins").abstained
    assert router.select("tell me a joke about penguins") == []
    picked = router.select("lock the garage door")
    assert 0 < len(picked) <= 5 and all(t in tools for t in picked)


def test_calibration_keeps_tool_recall():
    scores = [0.5, 0.6, 0.7, 0.8, 0.2, 0.1]
    labels = ["a", "b", "c", "d", None, None]
    th = calibrate_threshold(scores, labels, min_tool_recall=1.0)
    assert 0.2 < th <= 0.5


def test_bad_files_are_one_clear_error(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_text('[{"description": "no name"}]')
    with pytest.raises(RoutingError, match=r"\$\[0\]"):
        load_tools(bad)
    q = tmp_path / "q.jsonl"
    q.write_text('{"query": "hi", "tool": "nope"}\n')
    with pytest.raises(RoutingError, match="line 1: tool 'nope'"):
        load_queries(q, {"a"})
    with pytest.raises(RoutingError, match="no such file"):
        load_tools(tmp_path / "missing.json")
