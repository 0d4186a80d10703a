"""Ingest (the batch protocol), filing per mode, reprocessing; reports through a Reporter."""
