"""The web viewer: static files and the server that serves them (installed as gen3d.viewer)."""
