"""gen3d: generate 3D and 4D content from text prompts, offline.

Layers (each depends only on those above it in this list):
``errors, config, utils`` -> ``cameras`` -> ``data`` (procedural world, renderer, datasets)
-> ``geometry``/``eval`` (metrics) -> ``diffusion``, ``nets`` -> ``autoencoders``, ``priors``
-> ``recon`` -> ``pipelines`` -> ``cli``, ``viewer``.
Heavy dependencies (torch, open3d, trimesh) are imported by the modules that need them, not here.
"""

__version__ = "0.1.0"
