"""The "where the p95 goes" renderer on a sessions.latency.LatencyReport: stage bars sized by their
share of the tail, budgets passed and failed with the stage that blew them, the tail factors and the
report's own verdict as the last line."""
from panels.latency_view import latency_text
from sessions.latency import BudgetCheck, LatencyReport, StageStat, TailFactor


def test_stages_budgets_and_tail_factors_are_shown():
    r = LatencyReport(
        "run", "abc123", "bench chat x8", 8, StageStat("e2el", 100, 300, 320, 150, 1.0),
        [StageStat("queue", 10, 150, 160, 40, 0.5), StageStat("decode", 50, 90, 95, 60, 0.3)],
        [BudgetCheck("e2el_p95_ms", 250, 300, False, "queue"), BudgetCheck("ttft_p95_ms", 500, 200, True, "prefill")],
        [TailFactor("prompt_tokens", 900, 120, 0.004, True, "long prompts wait"),
         TailFactor("preemptions", 0, 0, None, False, "")],
        ["r1"])
    text = latency_text(r).plain
    lines = text.splitlines()
    queue = next(line for line in lines if line.strip().startswith("queue") and "%" in line)
    assert queue.count("█") == 12 and "50.0%" in queue  # half of a 24-cell bar
    decode = next(line for line in lines if line.strip().startswith("decode") and "%" in line)
    assert decode.count("█") == 7
    assert "FAIL e2el_p95_ms 300.0 ms, limit 250.0 ms (most in queue)" in text
    assert "PASS ttft_p95_ms 200.0 ms" in text and "(most in prefill)" not in text
    assert "⚠ prompt_tokens: tail 900 vs rest 120 p=0.004 · long prompts wait" in text
    assert "⚠ preemptions" not in text
    assert lines[-1] == r.verdict() and "queue" in lines[-1]
