"""Model folders for the torch backend: a Hugging Face folder as is, or a GGUF dequantized once
through transformers and cached as safetensors (+ config, tokenizer) in the user cache dir."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from engine.model_source import ModelSpec, cache_dir, gguf_key
from engine.types import EngineError

_DONE_MARK = "workbench-converted.json"


def model_dir(spec: ModelSpec) -> Path:
    """A folder with config.json, *.safetensors and the tokenizer for `spec`."""
    if spec.kind == "hf_dir":
        return Path(spec.path)
    if spec.kind == "gguf":
        out = cache_dir("weights") / gguf_key(Path(spec.path))
        if not (out / _DONE_MARK).is_file():
            convert_gguf(Path(spec.path), out)
        return out
    if spec.kind == "hub":
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(spec.path, allow_patterns=["*.json", "*.safetensors", "tokenizer*"]))
        except Exception as e:
            raise EngineError(f"cannot fetch {spec.path} from the Hugging Face hub: {e}") from e
    raise EngineError(f"the torch backend cannot load a {spec.kind} model")


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize through transformers (gguf_file=) and write an HF folder, atomically."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except (ValueError, KeyError, OSError) as e:
        raise EngineError(f"transformers cannot read {gguf.name}: {e}") from e
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=out.parent))
    try:
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, default=str))
        gen = model.generation_config.to_dict()
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2, default=str))
        sd = model.state_dict()
        if cfg.get("tie_word_embeddings"):
            sd.pop("lm_head.weight", None)  # shared with the embedding; safetensors refuses aliases
        save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp / "model.safetensors"))
        tok.save_pretrained(str(tmp))
        (tmp / _DONE_MARK).write_text(json.dumps({"source": str(gguf)}))
        try:
            tmp.rename(out)
        except OSError:
            if not (out / _DONE_MARK).is_file():
                raise
            shutil.rmtree(tmp)  # another process finished the same conversion first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EngineError(f"cannot read {folder / 'config.json'}: {e}") from e


def load_tensors(folder: Path) -> dict:
    """All tensors of the checkpoint by transformers name (safetensors, else pytorch_model*.bin)."""
    import torch
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    tensors: dict = {}
    if files:
        for f in files:
            tensors.update(load_file(str(f)))
        return tensors
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if not bins:
        raise EngineError(f"no *.safetensors or pytorch_model*.bin weights in {folder}")
    for f in bins:
        tensors.update(torch.load(str(f), map_location="cpu", weights_only=True))
    return tensors


def eos_ids(folder: Path, tokenizer) -> frozenset[int]:
    ids: set[int] = set()
    gen = folder / "generation_config.json"
    if gen.is_file():
        eos = json.loads(gen.read_text()).get("eos_token_id")
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)
