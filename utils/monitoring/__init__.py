"""Monitoring: quality against noise (evaluation), each feature's drift against its normal (drift),
the alert rules in Python (alerts) and the Prometheus metrics a run exports (metrics).

May import: utils.store and phase_status. Never modules/, the engine's runner or the sources."""
