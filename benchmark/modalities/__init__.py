"""Modalities: one module per kind of item content a tower reads, each registering itself (see registry.py)."""
