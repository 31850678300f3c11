"""MLB data sources: HTTP with retries and the Retrosheet folders (common), Retrosheet's event files
through chadwickpy (events), the MLB Stats API (statsapi) and the MLBAM-to-Retrosheet crosswalk.

May import: utils.store and utils.engine's progress bars. Never modules/ or monitoring."""
