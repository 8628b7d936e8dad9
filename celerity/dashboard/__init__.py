"""The web dashboard (``celerity dashboard``): runs, task graphs, logs, workers, queues and
Prometheus metrics of a fleet, read from its Redis. See ``celerity.dashboard.app``."""
