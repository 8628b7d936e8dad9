"""Benchmarks: Celerity on Celery workers against plain Celery, on one throwaway Redis.

Run ``python -m bench`` (or ``make bench``); see ``bench.__main__`` for the options.
"""
