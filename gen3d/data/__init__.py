"""gen3d.data."""
