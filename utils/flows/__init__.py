"""Applications built on the engine and the project's stages: walk-forward backtests (backtest), many
seasons on Dask (scaleout) and the Prefect deployment of the nightly job (nightly).

May import: every other part of utils. The backtest trains and predicts with modules/ directly, the one
place utils/ reaches into modules/ (held, with its reason, by tests/test_code_rules.py)."""
