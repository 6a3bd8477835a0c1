"""Metadata providers (metadata.md §5): TMDb and TheTVDB behind one resilient, cached client,
called only inside ``metadata_refresh`` jobs. ``providers.build`` makes them from the config."""
