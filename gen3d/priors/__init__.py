"""Generative priors: the multi-view latent diffusion prior and what it is built from.

* ``mvdata``: multi-view training sets (tensor shards) rendered from the procedural world;
* ``text``: frozen text encoders behind one interface (MiniLM shipped offline; any local
  transformers encoder);
* ``mvprior``: :class:`MultiViewPrior` (autoencoder + multi-view denoiser + text encoder + rig), sampling
  with classifier-free guidance, save/load;
* ``train``: ``gen3d train prior``; ``ship``: packaging a trained prior with its model card;
* ``vocab``: the object and colour words the procedural world (and the default model) knows.

The text and camera conditioning (``text``, ``gen3d.nets.multiview.camera_vector``) is written to be
reused by the 4D and point-cloud priors.
"""
