"""The data layer: the experience store, datasets built from stored decisions, synthetic task generators."""
