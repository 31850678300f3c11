"""The engine: runs a registry of stages and knows nothing of baseball. The stage and registry types
(stages), the plan and its drawings (plan), what each output was made from (lineage), running one
stage (one_stage), the two executors (executors), a run as a whole: lock, signals, status and the
post-run hooks (session), DVC versioning and restore (versioning), the
Prefect server (prefect_api), retention (cleanup), threads, progress bars and logging.

May import: utils.store and phase_status. It is handed the registry and the post-run hooks; it never
imports modules/, the sources or monitoring."""
