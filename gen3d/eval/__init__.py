"""gen3d.eval."""
