"""gen3d.priors."""
