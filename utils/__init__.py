"""The pipeline's shared parts, by role. Imports run one way (held by tests/test_code_rules.py):
store <- engine <- sources, monitoring <- flows; config (the settings) and errors (one line and an exit
code per error) serve the command line. Nothing here imports modules/ but the backtest, which retrains
and predicts with the stages' own models."""
