"""gen3d.diffusion."""
