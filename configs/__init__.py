"""YAML presets, one per pipeline or training run (installed as gen3d.configs)."""
