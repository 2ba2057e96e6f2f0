"""Dataset formats: one module per on-disk layout, each registering itself (see registry.py)."""
