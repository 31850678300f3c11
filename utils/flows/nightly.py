"""The nightly job as a Prefect flow, for a Prefect deployment (prefect.yaml) or `serve`.

    python -m utils.flows.nightly --serve     # one long-running process: 06:15 and 16:30 New York time

Two runs a day, as the README's crontab lines: the morning's (`nightly`) with each team's expected
nine, and the game-time run (`game-time`, `run.lineups=confirmed`) once most lineups are posted,
two to four hours before the evening's first pitches. Both run `pipeline.py run` for today's date;
the run lock keeps a late run and the next one from overlapping, and the prediction log keeps the
two apart.
"""
from __future__ import annotations

import argparse

from prefect import flow

NIGHTLY_CRON = "15 6 * * *"
NIGHTLY_TIMEZONE = "America/New_York"
GAME_TIME_CRON = "30 16 * * *"  # a 19:05 first pitch's lineups are posted by then; day games' long before
GAME_TIME_OVERRIDES = ["run.lineups=confirmed"]


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


def deployments(config_path: str) -> list:
    """The morning and the game-time deployments, as prefect.yaml declares them, for `serve`."""
    from prefect.client.schemas.schedules import CronSchedule

    def at(cron: str) -> list:
        return [CronSchedule(cron=cron, timezone=NIGHTLY_TIMEZONE)]

    return [mlb_nightly.to_deployment(name="nightly", schedules=at(NIGHTLY_CRON),
                                      parameters={"config_path": config_path}),
            mlb_nightly.to_deployment(name="game-time", schedules=at(GAME_TIME_CRON),
                                      parameters={"config_path": config_path, "overrides": GAME_TIME_OVERRIDES})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="serve the nightly deployment (needs a Prefect API)")
    parser.add_argument("--config", default="config.yaml")
    opts = parser.parse_args()
    if opts.serve:
        from prefect import serve

        serve(*deployments(opts.config))
    else:
        mlb_nightly(opts.config)


if __name__ == "__main__":
    main()
