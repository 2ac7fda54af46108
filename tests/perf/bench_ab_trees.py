"""Two checkouts of the project, A/B on the torch engine (CPU): batch-1 decode, a mixed batch of 32
requests, a code-rename prompt with speculation off/ngram/auto, and `c16`: the serving
comparison's workload in process (64 random prompts x 256 in / 64 out, 16 in flight, speculation
off). Each tree runs in its own subprocess, rounds interleaved with the order alternated; each cell reports tok/s and process CPU
ms per output token, the figure that holds on a shared machine. Prints a JSON line per run and a
summary of medians.

    git worktree add /tmp/before <commit>      # or: git archive <commit> | tar -x -C /tmp/before
    PYTHONPATH=. python tests/perf/bench_ab_trees.py /tmp/before . [--rounds 3] [--cells base,off,ngram,auto,c16]
"""
import argparse, collections, json, os, statistics, subprocess, sys

CHILD = r'''
import json, random, resource, sys, time, os
from engine import Engine, SamplingParams
def cpu(): r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
which = sys.argv[1]
out = {}
if which == "base":
    eng = Engine.load("smollm2-135m", backend="torch", speculation="off")
    prompt = eng.backend.render_prompt("Write a long story about a lighthouse keeper and the sea.")
    eng.submit("", SamplingParams(max_tokens=8, temperature=0, ignore_eos=True), prompt_token_ids=prompt).result()
    c0, t0 = cpu(), time.perf_counter()
    r = eng.submit("", SamplingParams(max_tokens=128, temperature=0, ignore_eos=True), prompt_token_ids=prompt).result()
    out["b1_tok_s"] = 1 / r.metrics.tpot_s
    out["b1_cpu_ms_per_tok"] = (cpu() - c0) * 1e3 / 128
    rng = random.Random(0)
    reqs = [([rng.randrange(100, 49000) for _ in range(rng.randint(32, 512))], rng.randint(16, 128)) for _ in range(32)]
    useful = sum(o for _, o in reqs)
    c0, t0 = cpu(), time.perf_counter()
    hs = [eng.submit("", SamplingParams(max_tokens=o, temperature=0, ignore_eos=True), prompt_token_ids=p) for p, o in reqs]
    [h.result() for h in hs]
    out["mixed_tok_s"] = useful / (time.perf_counter() - t0)
    out["mixed_cpu_ms_per_tok"] = (cpu() - c0) * 1e3 / useful
elif which == "c16":
    import threading
    eng = Engine.load("smollm2-135m", backend="torch", speculation="off")
    rng = random.Random(16)
    reqs = [[rng.randrange(100, 49000) for _ in range(256)] for _ in range(64)]
    eng.submit("", SamplingParams(max_tokens=4, temperature=0, ignore_eos=True), prompt_token_ids=reqs[0][:32]).result()
    sem, res = threading.Semaphore(16), []
    def one(p):
        with sem:
            res.append(eng.submit("", SamplingParams(max_tokens=64, temperature=0, ignore_eos=True), prompt_token_ids=p).result())
    c0, t0 = cpu(), time.perf_counter()
    ts = [threading.Thread(target=one, args=(p,)) for p in reqs]
    [t.start() for t in ts]
    [t.join() for t in ts]
    n = sum(len(r.token_ids) for r in res)
    out["c16_tok_s"] = n / (time.perf_counter() - t0)
    out["c16_cpu_ms_per_tok"] = (cpu() - c0) * 1e3 / n
    tpots = sorted(r.metrics.tpot_s for r in res)
    out["c16_median_tpot_ms"] = tpots[len(tpots) // 2] * 1e3
else:
    eng = Engine.load("smollm2-135m", backend="torch", speculation=which)
    code = "\n".join(f"def f{i}(x):\n    total = x + {i}\n    return total * 2" for i in range(8))
    msgs = [[{"role": "user", "content": f"Rewrite this code with the function f{j} renamed to g{j}. Output only the code.\n\n{code}"}] for j in range(2)]
    eng.generate(msgs[0], SamplingParams(max_tokens=8, temperature=0))
    c0, t0 = cpu(), time.perf_counter()
    n = 0
    for m in msgs:
        r = eng.generate(m, SamplingParams(max_tokens=96, temperature=0))[0]
        n += len(r.token_ids)
    out["spec_tok_s"] = n / (time.perf_counter() - t0)
    out["spec_cpu_ms_per_tok"] = (cpu() - c0) * 1e3 / n
    out["tokens"] = n
print("RESULT " + json.dumps(out))
'''
ap = argparse.ArgumentParser()
ap.add_argument("before")
ap.add_argument("after")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--cells", default="base,off,ngram,auto", help="comma-separated: base, off, ngram, auto, c16")
args = ap.parse_args()
trees = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
rounds = args.rounds
cells = collections.defaultdict(list)
env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
for r in range(rounds):
    for which in args.cells.split(","):
        for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
            p = subprocess.run([sys.executable, "-c", CHILD, which], cwd=trees[name], env=dict(env, PYTHONPATH=trees[name]),
                               capture_output=True, text=True)
            line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
            res = json.loads(line[0][7:]) if line else {"error": p.stderr[-500:]}
            print(json.dumps({"round": r, "tree": name, "mode": which, "load": os.getloadavg()[0], **res}), flush=True)
            for k, v in res.items():
                if k.endswith(("tok_s", "per_tok", "_ms")):
                    cells[(which, k, name)].append(v)
summary = {}
for which, k in sorted({(w, k) for w, k, _ in cells}):
    b, a = cells[(which, k, "before")], cells[(which, k, "after")]
    if b and a:
        summary[f"{which}.{k}"] = {"before": statistics.median(b), "after": statistics.median(a),
                                   "ratio": statistics.median(a) / statistics.median(b)}
print(json.dumps({"summary": summary}, indent=1))
