"""Training objectives: one module each, registered by name (registry.py); `train.objective`."""
