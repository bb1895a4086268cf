from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gen3d.errors import DataError
from gen3d.priors.text import HFTextEncoder, TextEncoderConfig, load_text_encoder


def test_minilm_ships_offline_and_separates_meanings(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = load_text_encoder(TextEncoderConfig(max_tokens=8))
    t = enc.encode(["a red mug", "a scarlet coffee cup", "a blue sphere", ""])
    assert t.shape == (4, 9, 384) and enc.dim == 384
    pooled = t[:, 0]
    assert torch.allclose(pooled.norm(dim=-1)[:3], torch.ones(3), atol=1e-4)
    assert F.cosine_similarity(pooled[0], pooled[1], dim=0) > F.cosine_similarity(pooled[0], pooled[2], dim=0) + 0.2
    # tokens past the prompt's length are zero ("a red mug" is 3 words + 2 special tokens)
    assert float(t[0, 1 + 5:].abs().max()) == 0.0 and float(t[0, 1:1 + 5].abs().min()) >= 0.0


def _tiny_bert(folder):
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "blue", "mug", "sphere"]
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(str(folder))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(str(folder))


def test_any_local_transformers_encoder_plugs_in(tmp_path):
    _tiny_bert(tmp_path / "bert")
    enc = HFTextEncoder(TextEncoderConfig(kind="hf", path=str(tmp_path / "bert"), max_tokens=6))
    t = enc.encode(["a red mug", "a blue sphere"])
    assert t.shape == (2, 7, 32) and enc.dim == 32
    assert not torch.allclose(t[0], t[1])


def test_missing_text_encoder_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="no config.json"):
        HFTextEncoder(TextEncoderConfig(kind="hf", path=str(tmp_path)))
    with pytest.raises(DataError, match="needs text.path"):
        HFTextEncoder(TextEncoderConfig(kind="hf"))
