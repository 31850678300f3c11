"""Storage: every path under the artifacts root (catalog), the contracts (schema), artifacts written
atomically with their SHA-256 and read back verified (artifacts), the one content-keyed cache every
cache of the pipeline uses (cache), and the run lock (locking).

May import: nothing else of this project. Everything else stands on it."""
