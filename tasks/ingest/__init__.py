"""Ingest: read subscriber files, bound them, normalise, validate and screen them into the warehouse."""
