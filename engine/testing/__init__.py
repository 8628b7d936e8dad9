"""Helpers for testing code written against the engine (the seed's ``prefect.testing``)."""
