"""Train the default multi-view prior on a lent GPU machine, inside a fixed time budget.

Runs there, after ``pack.py`` here (it needs ``.devpack/``: the trimesh wheel and the pruned MiniLM):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .devpack/whl/*.whl
    PYTHONPATH=/tmp/site:. python3 benchmarks/device_prior/train_on_device.py --out-dir $OUT --deadline-s 480

Steps, each timed and printed:

1. rebuild the float32 MiniLM from the pruned pack (``/tmp/minilm``) and make it the encoder that
   ``gen3d.priors.train`` uses for the default text config (so the trained prior records the default,
   bundled MiniLM, which is what inference loads);
2. ``gen3d train data`` on all cores (``--n`` objects, the rig from ``--elevation``/``--fov``);
3. check that every caption tokenises to word pieces the pack kept (else stop: its features would be wrong);
4. a short probe run of ``gen3d train prior`` to measure steps per second, then the real run with as
   many steps as fit before ``--deadline-s`` (recorded in the prior's metadata like any other run);
5. store the EMA prior as float16 and send it back as a tar split into 15 MiB parts (the device tool
   returns files of at most 16 MiB); here, ``cat prior.tar.part_* | tar x`` joins and unpacks them.

The same training runs on CPU with ``gen3d train prior --config configs/prior_gpu.yaml steps=N`` (slowly).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def rebuild_minilm(pack: Path, dest: Path) -> set[int]:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(pack / "pruned.safetensors"), "pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    ids = state.pop("__kept_ids__")
    rows = state.pop("__kept_rows__")
    full = torch.zeros(int(meta["vocab_size"]), rows.shape[1])
    full[ids] = rows.float()
    out = {k: v.float().contiguous() for k, v in state.items()}
    out[meta["word_embeddings_key"]] = full
    dest.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dest / "model.safetensors"), metadata={"format": "pt"})
    for p in pack.iterdir():
        if p.name != "pruned.safetensors":
            shutil.copy(p, dest / p.name)
    return set(ids.tolist())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--config", default="configs/prior_gpu.yaml")
    ap.add_argument("--n", type=int, default=36000)
    ap.add_argument("--elevation", type=float, default=20.0)
    ap.add_argument("--fov", type=float, default=30.0)
    ap.add_argument("--azimuth-start", type=float, default=0.0, help="e.g. 45: the rig turned by half a view step")
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--deadline-s", type=float, default=480.0,
                    help="seconds after start by which training must have ended (saving follows)")
    ap.add_argument("--probe-steps", type=int, default=200)
    ap.add_argument("--work", default="/tmp/g3")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=0, help="fixed step count (no probe)")
    ap.add_argument("overrides", nargs="*", help="key=value for the prior's training config")
    args = ap.parse_args()

    start = time.perf_counter()
    import torch

    import gen3d.priors.text as text
    from gen3d.config import load_config
    from gen3d.priors.mvdata import MVDataConfig, MVDataset, PriorRig, build_dataset
    from gen3d.priors.mvprior import MultiViewPrior
    from gen3d.priors.train import PriorTrainConfig, train_prior

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    work, out_dir = Path(args.work), Path(args.out_dir)
    work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t = time.perf_counter()

    kept = rebuild_minilm(ROOT / ".devpack" / "minilm", work / "minilm")
    enc = text.HFTextEncoder(text.TextEncoderConfig(kind="hf", path=str(work / "minilm")), device=args.device)
    text._CACHE[(text.TextEncoderConfig(), "cpu")] = enc  # what encode_captions asks for: the default MiniLM
    times["minilm"] = time.perf_counter() - t

    t = time.perf_counter()
    rig = PriorRig(elevation_deg=args.elevation, fov_deg=args.fov, azimuth_start_deg=args.azimuth_start)
    data_cfg = MVDataConfig(out=str(work / "mvdata"), n=args.n, rig=rig, workers=args.workers)
    build_dataset(data_cfg, quiet=True)
    times["render"] = time.perf_counter() - t
    print(f"rendered {args.n} objects in {times['render']:.1f} s", flush=True)

    data = MVDataset(data_cfg.out)
    caps = sorted({c for m in data.meta for c in m["captions"]})
    missing = set()
    for i in range(0, len(caps), 4096):
        for seq in enc.tokenizer(caps[i:i + 4096])["input_ids"]:
            missing.update(set(seq) - kept)
    if missing:
        print(f"STOP: captions need word pieces the pack dropped: {sorted(missing)[:20]}", flush=True)
        return 2
    print(f"{len(caps)} distinct captions, all word pieces kept", flush=True)

    base = ["data=" + data_cfg.out, "autoencoder=assets/default/autoencoder", "init_from=assets/default", f"device={args.device}",
            "preview_prompts=[]", *args.overrides]
    t = time.perf_counter()
    # The probe's rate includes cuDNN autotuning and first-step costs: on the H100 it read 7.3 steps/s
    # for a run that then went at 10.7-13.9; 200 probe steps keep the error on the safe side.
    probe = load_config(PriorTrainConfig, args.config, base + [f"out={work / 'probe'}", f"steps={args.probe_steps}",
                                                                f"checkpoint_every={10**6}"])
    r = train_prior(probe, quiet=True)  # also fills the latent and caption caches
    times["encode_and_probe"] = time.perf_counter() - t
    rate = args.probe_steps / r["seconds"]
    cfg0 = load_config(PriorTrainConfig, args.config, base)
    budget = args.deadline_s - (time.perf_counter() - start) - 15  # the run's own start-up and last checkpoint
    steps = args.steps or max(100, int(budget * rate * 0.92) // 50 * 50)
    print(f"probe: {rate:.1f} steps/s at batch {cfg0.batch_size} -> {steps} steps", flush=True)

    run = work / "prior"
    (run / "cache").mkdir(parents=True, exist_ok=True)
    for f in (work / "probe" / "cache").iterdir():
        shutil.copy(f, run / "cache" / f.name)
    t = time.perf_counter()
    cfg = load_config(PriorTrainConfig, args.config, base + [f"out={run}", f"steps={steps}"])
    result = train_prior(cfg, quiet=False)
    times["train"] = time.perf_counter() - t

    t = time.perf_counter()
    ship = work / "ship" / "prior"
    prior = MultiViewPrior.from_pretrained(run / "prior")
    prior.save_pretrained(ship, meta=prior.meta, half=True)
    for name in ("config.yaml", "losses.png", "samples.png"):
        if (run / name).is_file():
            shutil.copy(run / name, work / "ship" / name)
    shutil.copy(Path(data_cfg.out) / "dataset.json", work / "ship" / "dataset.json")
    info = {"times": times, "steps": steps, "rate_steps_per_s": rate, "result": {k: v for k, v in result.items() if k != "config"},
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none", "torch": torch.__version__,
            "n": args.n, "elevation": args.elevation, "fov": args.fov, "azimuth_start": args.azimuth_start}
    (work / "ship" / "device_run.json").write_text(json.dumps(info, indent=1))
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(f"tar cf - -C {work} ship | split -b 15m - {out_dir}/prior.tar.part_", shell=True, check=True)
    times["ship"] = time.perf_counter() - t
    print(json.dumps({k: v for k, v in info.items() if k != "result"}, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
