"""SmolLM2-135M-Instruct, the offline default language model (a GGUF inside a registry wheel).

The asset is dequantized once and saved as a plain transformers folder under
``$DPARENA_HOME/models/``; later loads read that folder (about 0.1-6 s instead of ~20-40 s).
"""

from __future__ import annotations

from pathlib import Path

from dparena.errors import require
from dparena.io import build_folder_once

ASSET = "smollm2-135m-instruct-gguf"


def smollm2_folder(store=None) -> Path:
    """A plain transformers copy of the SmolLM2-135M-Instruct asset, made once from the GGUF."""
    from dparena.assets import AssetStore

    store = store or AssetStore()

    def build(tmp: Path) -> None:
        gguf = store.path(ASSET)
        torch = require("torch", "llm")
        transformers = require("transformers", "llm")
        require("gguf", "llm")
        tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = transformers.AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        cfg = quantized.config
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        plain = transformers.AutoModelForCausalLM.from_config(cfg)
        plain.load_state_dict(quantized.state_dict())
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return build_folder_once(store.home / "models" / "smollm2-135m-instruct", "model.safetensors",
                             build)
