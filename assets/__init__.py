"""Shipped weights (with model cards), prompt lists and small fixtures (installed as gen3d.assets)."""
