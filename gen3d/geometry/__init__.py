"""gen3d.geometry."""
