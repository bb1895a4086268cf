"""gen3d.recon."""
