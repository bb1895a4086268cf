"""Pack what a GPU training run of the default prior needs beside the repository (run here, on CPU).

The lent GPU machine has torch but neither trimesh (the procedural world builds meshes with it) nor the
all-MiniLM-L6-v2 weights, and what travels there is capped at 64 MiB together with the repository. So
this writes ``.devpack/`` (ignored by git):

* ``whl/``: the trimesh wheel (pure Python), installed there into /tmp/site;
* ``minilm/``: the text encoder in a pruned form: every weight in float16 except the word-embedding
  matrix, of which only the rows of the word pieces that gen3d's captions and prompts can contain are
  kept (the caption generator draws from fixed word lists; the ids are collected by tokenising those
  lists and 330,000 sampled captions). ``train_on_device.py`` rebuilds a full float32 model from it and
  refuses to train if a caption needs a word piece that was dropped.

With ``--generate`` it also writes ``site.tar.gz``: what ``gen3d generate`` needs there beyond the
machine's own packages (gsplat, whose CUDA sources compile there on first use; pygltflib and its
dependencies; plyfile; rtree; trimesh), unpacked from their wheels and packed again without the
documentation and tests of gsplat's bundled glm, so that everything fits the 64 MiB the device tool
carries. There: ``mkdir -p /tmp/site && tar xzf .devpack/site.tar.gz -C /tmp/site``.
``benchmarks/generate_gpu.py`` uses it.

    .venv/bin/python benchmarks/device_prior/pack.py [--generate]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / ".devpack"
# What `gen3d generate` imports that the GPU machine's image lacks (versions as installed here).
GENERATE_WHEELS = ("gsplat==1.4.0", "pygltflib==1.16.5", "dataclasses-json==0.6.7", "marshmallow==3.26.2",
                   "deprecated==1.2.18", "plyfile==1.1.3", "rtree==1.4.1", "trimesh==5.2.0")
SKIP_IN_SITE = ("gsplat/cuda/csrc/third_party/glm/doc/", "gsplat/cuda/csrc/third_party/glm/test/")
TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def caption_word_ids(tok, n_specs: int = 60000) -> list[int]:
    from gen3d.data.captions import captions_for
    from gen3d.data.colors import COLOR_BY_NAME
    from gen3d.data.objects import CLASS_BY_NAME
    from gen3d.data.world import sample_spec

    words: set[str] = {"a", "an", "in", "that", "is", "with", "and"}
    for c in COLOR_BY_NAME.values():
        words.update(c.words)
        words.add(c.name)
    for c in CLASS_BY_NAME.values():
        words.update(c.nouns)
        for s in c.slots:
            words.update(s.words or ())
    for split in ("train", "heldout"):
        for i in range(n_specs if split == "train" else n_specs // 10):
            for cap in captions_for(sample_spec(11, i, split), 4):
                words.update(cap.split())
    for line in (ROOT / "configs" / "eval_heldout_prompts.jsonl").read_text().splitlines():
        if line.strip():
            words.update(json.loads(line)["prompt"].split())
    ids = set(tok.all_special_ids)
    for seq in tok(sorted(words))["input_ids"]:
        ids.update(seq)
    return sorted(ids)


def pack_minilm(dest: Path) -> dict:
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    from gen3d.priors.text import minilm_path

    src = minilm_path()
    tok = AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    ids = caption_word_ids(tok)
    state = load_file(str(src / "model.safetensors"))
    key = next(k for k in state if k.endswith("word_embeddings.weight"))
    out = {k: v.half().contiguous() for k, v in state.items() if k != key}
    out["__kept_rows__"] = state[key][torch.tensor(ids)].half().contiguous()
    out["__kept_ids__"] = torch.tensor(ids, dtype=torch.int64)
    dest.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dest / "pruned.safetensors"), metadata={"word_embeddings_key": key,
                                                               "vocab_size": str(state[key].shape[0])})
    for name in TOKENIZER_FILES:
        shutil.copy(src / name, dest / name)
    return {"kept_ids": len(ids), "bytes": (dest / "pruned.safetensors").stat().st_size}


def pack_site(dest: Path) -> int:
    """The wheels of GENERATE_WHEELS (for CPython 3.12 on x86-64 Linux) as one tar.gz at ``dest``."""
    import tarfile
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                        "--platform", "manylinux_2_17_x86_64", "-d", tmp, *GENERATE_WHEELS], check=True)
        for whl in sorted(Path(tmp).glob("*.whl")):
            with zipfile.ZipFile(whl) as z:
                for name in z.namelist():
                    if not name.startswith(SKIP_IN_SITE):
                        z.extract(name, site)
        with tarfile.open(dest, "w:gz") as tar:
            for item in sorted(site.iterdir()):
                tar.add(item, arcname=item.name)
    return dest.stat().st_size


def main() -> int:
    generate = "--generate" in sys.argv[1:]
    if PACK.exists():
        shutil.rmtree(PACK)
    info = pack_minilm(PACK / "minilm")
    (PACK / "whl").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d",
                    str(PACK / "whl"), "trimesh==5.2.0"], check=True)
    if generate:
        pack_site(PACK / "site.tar.gz")
    size = sum(p.stat().st_size for p in PACK.rglob("*") if p.is_file())
    print(f"packed {PACK}: {size / 2**20:.1f} MiB (MiniLM: {info['kept_ids']} word pieces kept)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
