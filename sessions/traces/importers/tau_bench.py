"""tau-bench results: a list of runs {"task_id", "trial", "reward", "info", "traj"}, where `traj`
is the chat-completions conversation of one task. One trace per run; no timings."""
from __future__ import annotations

from typing import Any

from sessions.traces.importers.common import as_list, build_from_messages, need, openai_message
from sessions.traces.model import Trace

NAME = "tau-bench"


def detect(doc: Any) -> bool:
    return isinstance(doc, list) and bool(doc) and all(isinstance(r, dict) and "traj" in r and "task_id" in r for r in doc[:5])


def parse(doc: Any) -> list[Trace]:
    traces = []
    for i, run in enumerate(doc):
        w = f"$[{i}]"
        traj = as_list(need(run, "traj", w), f"{w}.traj")
        msgs = [openai_message(m, f"{w}.traj[{j}]") for j, m in enumerate(traj)]
        task, trial = run.get("task_id"), run.get("trial", 0)
        t = Trace("", NAME, f"task {task} trial {trial}", source_key=f"{task}/{trial}/{i}",
                  attributes={"tau_bench.task_id": task, "tau_bench.trial": trial, "tau_bench.reward": run.get("reward")})
        traces.append(build_from_messages(t, msgs))
    return traces
