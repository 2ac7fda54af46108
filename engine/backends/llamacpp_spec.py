"""Whether llama.cpp's prompt-lookup decoding pays on this machine: an A/B measured on demand (plain vs
LlamaPromptLookupDecoding, same prompt, greedy), cached per model file; the backend only reads the cache."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

A_B_PROMPT = ("Add a docstring.\n\n```python\ndef find(items, key):\n    for i in range(len(items)):\n"
              "        if items[i] == key:\n            return i\n    return -1\n```")


def cache_file(model_path: str) -> Path:
    from engine.model_source import cache_dir, gguf_key

    return cache_dir("speculation") / f"llamacpp-prompt-lookup-{gguf_key(Path(model_path))}.json"


def cached_measurement(model_path: str) -> dict[str, Any] | None:
    try:
        return json.loads(cache_file(model_path).read_text())
    except (OSError, ValueError):
        return None


def decide(model_path: str) -> tuple[str, str]:
    """(speculation, reason) for the llamacpp backend at load: reads the cache, never measures."""
    m = cached_measurement(model_path)
    if m is None:
        return "off", ("llama.cpp prompt lookup not measured on this machine (run `workbench spec llamacpp-ab`); "
                       "off, as the last measurement elsewhere lost")
    figures = (f"measured {m['measured_at']}: prompt lookup {m['prompt_lookup_tok_s']:.1f} tok/s vs plain "
               f"{m['plain_tok_s']:.1f} tok/s ({m['speedup']:.2f}x), greedy output "
               f"{'identical' if m['identical'] else 'changed'}")
    if m["speedup"] < 1.03 or not m["identical"]:
        return "off", f"off: llama.cpp prompt lookup loses here; {figures}"
    return "off", f"off: prompt lookup would pay ({figures}), but this backend decodes one token per step"


def measure_prompt_lookup(model: str | None, max_tokens: int = 128, n_ctx: int = 2048) -> dict[str, Any]:
    """Plain vs prompt-lookup greedy decoding of the same code-edit prompt; writes the cache file."""
    from llama_cpp import Llama
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    from engine.model_source import resolve_model

    spec = resolve_model(model)
    runs = {}
    for name, draft in (("plain", None), ("prompt_lookup", LlamaPromptLookupDecoding(num_pred_tokens=10))):
        llm = Llama(model_path=spec.path, n_ctx=n_ctx, verbose=False, draft_model=draft)
        msgs = [{"role": "user", "content": A_B_PROMPT}]
        llm.create_chat_completion(msgs, max_tokens=4, temperature=0)  # warm
        t = time.perf_counter()
        out = llm.create_chat_completion(msgs, max_tokens=max_tokens, temperature=0)
        dt = time.perf_counter() - t
        runs[name] = (out["choices"][0]["message"]["content"], out["usage"]["completion_tokens"] / dt)
        llm.close()
    res = {
        "model": spec.display_name,
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "plain_tok_s": runs["plain"][1],
        "prompt_lookup_tok_s": runs["prompt_lookup"][1],
        "speedup": runs["prompt_lookup"][1] / runs["plain"][1],
        "identical": runs["plain"][0] == runs["prompt_lookup"][0],
        "max_tokens": max_tokens,
        "note": "CPU shared with other processes while measured" if os.cpu_count() and os.cpu_count() <= 4 else "",
    }
    path = cache_file(spec.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2))
    res["cache_file"] = str(path)
    return res
