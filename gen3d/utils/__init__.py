"""gen3d.utils."""
