"""xlingbench xlingbench: model sources, registries, caching, running, tracking and the CLI."""
__version__ = "0.1.0"
