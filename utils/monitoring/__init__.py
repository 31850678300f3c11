"""Monitoring: quality against noise (evaluation), each feature's drift against its normal (drift),
dashboards/alerts.yml's rules evaluated in Python for the bench (alerts) and the Prometheus metrics a
run exports (metrics).

May import: utils.store, phase_status and the engine's types (utils.engine.stages). Never modules/,
the engine's runner or the sources."""
