"""Segment-spec web events landed as object-storage files (``landing``)."""
