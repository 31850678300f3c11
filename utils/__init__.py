"""The pipeline's shared parts."""
