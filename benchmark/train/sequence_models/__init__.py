"""Sequence models (user encoders): one module each, registered by name (registry.py); `train.sequence_model`."""
