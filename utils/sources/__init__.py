"""MLB data sources: what A reads, behind small interfaces (adapters); HTTP with retries and the
Retrosheet folders (common); Retrosheet's game logs, typed (gamelogs), and event files through
chadwickpy (events); each season parsed once and cached (seasons); the MLB Stats API (statsapi) and the
MLBAM-to-Retrosheet crosswalk; the quarantine's rows.

May import: utils.store and utils.engine's progress bars. Never modules/ or monitoring."""
