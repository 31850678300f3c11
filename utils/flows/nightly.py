"""The nightly job as a Prefect flow, for a Prefect deployment (prefect.yaml) or `flow.serve`.

    python -m utils.flows.nightly --serve     # one long-running process; runs at 06:15 New York time

Both it and the crontab line in the README run `pipeline.py run` for today's date; the run lock
keeps a late run and the next one from overlapping.
"""
from __future__ import annotations

import argparse

from prefect import flow

NIGHTLY_CRON = "15 6 * * *"
NIGHTLY_TIMEZONE = "America/New_York"


@flow(name="mlb-nightly", log_prints=True)
def mlb_nightly(config_path: str = "config.yaml", overrides: list[str] | None = None) -> int:
    """Run every module for today's games; a non-zero exit fails the flow run."""
    import pipeline

    args = ["run", "--config", config_path]
    for override in overrides or []:
        args += ["--set", override]
    code = pipeline.run_cli(args)
    if code:
        raise RuntimeError(f"pipeline.py {' '.join(args)} exited with {code}")
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="serve the nightly deployment (needs a Prefect API)")
    parser.add_argument("--config", default="config.yaml")
    opts = parser.parse_args()
    if opts.serve:
        mlb_nightly.serve(name="nightly", cron=NIGHTLY_CRON, parameters={"config_path": opts.config})
    else:
        mlb_nightly(opts.config)


if __name__ == "__main__":
    main()
