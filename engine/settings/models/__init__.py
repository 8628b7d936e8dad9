"""Prefect's settings model path; Celerity's one model is ``CeleritySettings``."""
