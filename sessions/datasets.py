"""The datasets `vllm bench serve` users have, made the way vLLM 0.32 makes them (same seed, same
tokenizer: the same prompts and lengths), so a run here compares with one there line for line:
ShareGPT JSON, random token prompts with input/output lengths, and the prefix-repetition workload."""
from __future__ import annotations

import json
import math
import random
from typing import Any

from sessions.bench import BenchItem, WorkloadOptions, workload
from sessions.errors import SessionsError

# vLLM's ShareGPT filter (is_valid_sequence): at least 4 tokens each way, prompt <= 1024, total <= 2048
MIN_LEN, MAX_PROMPT_LEN, MAX_TOTAL_LEN = 4, 1024, 2048


def _need_tokenizer(o: WorkloadOptions, name: str) -> Any:
    if o.tokenizer is None:
        raise SessionsError(f"the {name} workload makes its prompts with the model's tokenizer; pass --tokenizer "
                            "(a local model: smollm2-135m, a GGUF file or an HF folder)")
    return o.tokenizer


def decode_to_length(tok: Any, ids: list[int], target: int, rng: Any = None, max_retry: int = 10) -> tuple[str, list[int]]:
    """vLLM's gen_prompt_decode_to_target_len: decode, encode again, pad with random ids or cut until
    the text is `target` tokens (some id runs come back as a different number of tokens)."""
    import numpy as np

    tries = max_retry
    while True:
        prompt = tok.decode(ids)
        ids = tok.encode(prompt, add_special_tokens=False)
        if tries <= 0 or len(ids) == target:
            return prompt, ids
        if len(ids) < target:
            size = target - len(ids)
            extra = rng.integers(0, tok.vocab_size, size=size) if rng is not None else \
                np.random.randint(0, tok.vocab_size, size=size)
            ids.extend(extra.tolist())
        else:
            ids = ids[:target]
        tries -= 1


@workload("random")
def random_workload(o: WorkloadOptions) -> list[BenchItem]:
    """`--dataset-name random`: lengths uniform around --input-len/--output-len (±range ratio), each
    prompt a run of consecutive allowed token ids from a random offset, after an optional shared
    random prefix of --prefix-len tokens."""
    import numpy as np

    tok = _need_tokenizer(o, "random")
    rng = np.random.default_rng(o.seed)
    ratio = o.range_ratio
    if not 0.0 <= ratio < 1.0:
        raise SessionsError(f"--range-ratio must be in [0, 1) (got {ratio})")
    output_len = o.output_len or o.max_tokens
    real_in = max(0, o.input_len - int(tok.num_special_tokens_to_add()))
    in_lo, in_hi = math.floor(real_in * (1 - ratio)), math.ceil(real_in * (1 + ratio))
    out_lo, out_hi = max(1, math.floor(output_len * (1 - ratio))), max(1, math.ceil(output_len * (1 + ratio)))
    if o.prefix_len + in_lo < 1:
        raise SessionsError("--input-len is too small: a prompt needs at least one token")
    input_lens = rng.integers(in_lo, in_hi + 1, size=o.num_requests)
    output_lens = rng.integers(out_lo, out_hi + 1, size=o.num_requests)
    offsets = rng.integers(0, tok.vocab_size, size=o.num_requests)
    special = set(tok.all_special_ids)
    allowed = np.array([t for t in range(tok.vocab_size) if t not in special])
    prefix: list[int] = []
    if o.prefix_len > 0:
        prefix_ids = allowed[rng.integers(0, len(allowed), size=o.prefix_len)].tolist()
        prefix = decode_to_length(tok, prefix_ids, o.prefix_len, rng)[1]
    items = []
    for i in range(o.num_requests):
        inner = allowed[(int(offsets[i]) + i + np.arange(int(input_lens[i]))) % len(allowed)].tolist()
        prompt, ids = decode_to_length(tok, prefix + inner, o.prefix_len + int(input_lens[i]), rng)
        items.append(BenchItem("random", prompt, int(output_lens[i]), prompt_token_ids=ids))
    return items


@workload("sharegpt")
def sharegpt_workload(o: WorkloadOptions) -> list[BenchItem]:
    """`--dataset-name sharegpt --dataset-path FILE`: the first human turn of each conversation as the
    prompt, the reply's token count as the output length (or --output-len), shuffled by the seed,
    entries outside vLLM's length filter skipped."""
    tok = _need_tokenizer(o, "sharegpt")
    data = load_sharegpt(o.dataset_path)
    random.seed(o.seed)
    random.shuffle(data)
    items: list[BenchItem] = []
    for entry in data:
        if len(items) >= o.num_requests:
            break
        prompt, completion = entry["conversations"][0]["value"], entry["conversations"][1]["value"]
        prompt_len = len(tok(prompt).input_ids)
        out_len = len(tok(completion).input_ids) if o.output_len is None else o.output_len
        too_short = prompt_len < MIN_LEN or (o.output_len is None and out_len < MIN_LEN)
        if too_short or prompt_len > MAX_PROMPT_LEN or prompt_len + out_len > MAX_TOTAL_LEN:
            continue
        items.append(BenchItem("sharegpt", prompt, out_len))
    if not items:
        raise SessionsError(f"{o.dataset_path}: no conversation passes the length filter")
    if len(items) < o.num_requests:  # vLLM oversamples the same way
        items += random.choices(items, k=o.num_requests - len(items))
    return items


def load_sharegpt(path: str | None) -> list[dict[str, Any]]:
    if not path:
        raise SessionsError("the sharegpt workload needs --dataset-path FILE (ShareGPT JSON)")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise SessionsError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise SessionsError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise SessionsError(f"{path}: expected a JSON list of conversations (ShareGPT format)")
    out = [e for e in data if isinstance(e, dict) and isinstance(e.get("conversations"), list)
           and len(e["conversations"]) >= 2 and all(isinstance(t, dict) and isinstance(t.get("value"), str)
                                                    for t in e["conversations"][:2])]
    if not out:
        raise SessionsError(f"{path}: no entry has two or more conversation turns")
    return out


@workload("prefix-repetition")
def prefix_repetition_workload(o: WorkloadOptions) -> list[BenchItem]:
    """`--dataset-name prefix_repetition`: --num-prefixes random prefixes of --prefix-len tokens, each
    shared by requests/num_prefixes prompts with their own random suffix of --suffix-len tokens."""
    import numpy as np

    tok = _need_tokenizer(o, "prefix-repetition")
    prefix_len = o.prefix_len or 256
    per_prefix = o.num_requests // o.num_prefixes
    if per_prefix == 0:
        raise SessionsError(f"--requests ({o.num_requests}) must be at least --num-prefixes ({o.num_prefixes})")
    random.seed(o.seed)
    np.random.seed(o.seed)

    def exact(n: int) -> list[int]:
        return decode_to_length(tok, np.random.randint(0, tok.vocab_size, size=n).tolist(), n)[1]

    items = []
    for p in range(o.num_prefixes):
        prefix = exact(prefix_len)
        for _ in range(per_prefix):
            ids = prefix + exact(o.suffix_len)
            items.append(BenchItem(f"prefix-repetition:{p}", tok.decode(ids), o.output_len or o.max_tokens,
                                   prompt_token_ids=ids))
    random.shuffle(items)
    return items
