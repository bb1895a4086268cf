"""gen3d.autoencoders."""
