"""The Hugging Face tokenizer of a model name (embedded, GGUF file, HF folder or hub id), for
clients that count or make tokens without loading the model: the bench datasets and the openai
backend's token counts, the same tokenizer `vllm bench serve --tokenizer` loads for those weights."""
from __future__ import annotations

import functools
import os
from typing import Any

from engine.model_source import resolve_model
from engine.types import EngineError


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str) -> Any:
    spec = resolve_model(name)
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # GGUF parsing chatter
    try:
        if spec.kind == "gguf":
            # the HF folder the torch backend converts once and caches holds the tokenizer; reading
            # it from the GGUF each time takes half a minute
            from engine.torch.weights import model_dir

            return AutoTokenizer.from_pretrained(str(model_dir(spec)))
        if spec.kind == "hub" and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise EngineError(f"{name} is a hub id and the hub is off (HF_HUB_OFFLINE=1): pass a local model")
        return AutoTokenizer.from_pretrained(spec.path)
    except (OSError, ValueError, KeyError) as e:
        raise EngineError(f"cannot load the tokenizer of {name}: {str(e).splitlines()[0]}") from None


def token_counter(name: str):
    """text -> number of tokens, no special tokens added."""
    tok = load_tokenizer(name)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])
