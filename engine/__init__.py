"""The wordbrush engine: edits regions of images from text, served over ZeroMQ."""

__version__ = "0.1.0"
