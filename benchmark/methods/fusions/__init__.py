"""Fusions: how a method makes one item vector of its modalities' vectors; one module each (registry.py)."""
