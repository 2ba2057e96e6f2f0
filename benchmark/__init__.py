"""mmbench: efficiency benchmarks for adapting multimodal foundation models to sequential recommendation."""

__version__ = "0.1.0"
SCHEMA_VERSION = 7
