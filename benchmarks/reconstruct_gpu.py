"""One-shot GPU check: gsplat build time, then Gaussian fits of 8 views at 256^2 with 8 held out.

    gen3d data render --out gpu_tmp/data --n 2 --views 16 --res 256 --seed 7
    TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 python benchmarks/reconstruct_gpu.py gpu_tmp/data/obj_00000 gpu_tmp/data/obj_00001
"""
import json, sys, time, os
import torch
sys.path.insert(0, os.getcwd())
from gen3d.data.dataset import load_views
from gen3d.recon.fit_gaussians import GaussianFitConfig, fit_gaussians
from gen3d.eval.image_metrics import psnr

print("torch", torch.__version__, torch.cuda.get_device_name(0), flush=True)
t = time.time()
import gsplat
from gen3d.recon.rasterize import rasterize
g = torch.randn(100, 3, device="cuda") * 0.1
q = torch.zeros(100, 4, device="cuda"); q[:, 0] = 1
vm = torch.eye(4, device="cuda")[None].clone(); vm[0, 2, 3] = 3
K = torch.tensor([[100., 0, 64], [0, 100, 64], [0, 0, 1]], device="cuda")[None]
out = rasterize(g, q, torch.full((100, 3), 0.02, device="cuda"), torch.full((100,), 0.5, device="cuda"),
                torch.rand(100, 3, device="cuda"), vm, K, 128, 128, backend="gsplat")
torch.cuda.synchronize()
build_s = time.time() - t
print("gsplat build+first call s", round(build_s, 1), flush=True)
rows = []
for obj in [sys.argv[1:] or ["gpu_tmp/data/obj_00000", "gpu_tmp/data/obj_00001"]]:
    vs = load_views(obj)
    train = vs.subset(list(range(0, 16, 2))); test = vs.subset(list(range(1, 16, 2)))
    for iters in [150, 300, 600, 1200]:
        for dw in [0.0, 0.2]:
            cfg = GaussianFitConfig(iters=iters, backend="gsplat", depth_weight=dw, views_per_step=2)
            torch.cuda.synchronize(); t = time.time()
            res = fit_gaussians(train, cfg, device="cuda", quiet=True)
            torch.cuda.synchronize(); fit_s = time.time() - t
            r = res.representation.render(test.cameras.to("cuda"))
            p = psnr(r.rgb.permute(0, 3, 1, 2).cpu(), test.images.permute(0, 3, 1, 2)).mean().item()
            row = dict(obj=obj[-9:], iters=iters, depth_weight=dw, fit_s=round(fit_s, 2), heldout_psnr=round(p, 2),
                       n=len(res.representation.gaussians))
            rows.append(row); print(json.dumps(row), flush=True)
os.makedirs(os.environ.get("OUT", "."), exist_ok=True)
json.dump({"build_s": build_s, "device": torch.cuda.get_device_name(0), "rows": rows},
          open(os.path.join(os.environ.get("OUT", "."), "gpu_fit.json"), "w"), indent=1)
