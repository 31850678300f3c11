import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from utils.config import ConfigError, PipelineConfig, build_config, load_config, parse_overrides

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_is_valid_and_matches_the_documented_defaults():
    cfg = load_config(ROOT / "config.yaml")
    assert cfg.run.overwrite_policy == "warn"
    assert cfg.features.elo.k == 4.0 and cfg.features.elo.home_advantage == 24.0
    assert cfg.data.franchise_map["MON"] == "WAS"


def test_set_overrides_are_typed_like_the_file():
    cfg = build_config({}, ["run.max_workers=3", "run.as_of=2024-07-14", "features.elo.mov=false",
                            "run.modules=[A,B]"])
    assert cfg.run.max_workers == 3
    assert cfg.run.as_of == dt.date(2024, 7, 14)
    assert cfg.features.elo.mov is False
    assert cfg.run.modules == ["A", "B"]


def test_misspelled_key_names_the_nearest_valid_key():
    with pytest.raises(ConfigError) as err:
        build_config({"paths": {"artifcts": "x"}})
    assert err.value.problems == [
        "paths.artifcts: unknown key; did you mean 'paths.artifacts'? (keys are case-sensitive)"]


def test_keys_are_case_sensitive():
    # 'Run' differs from 'run' only by case: it must be refused, with the right spelling offered.
    with pytest.raises(ConfigError) as err:
        build_config({"Run": {"max_workers": 2}})
    assert "Run: unknown key; did you mean 'run'?" in err.value.problems[0]


def test_every_problem_is_reported_with_its_path():
    with pytest.raises(ConfigError) as err:
        build_config({}, ["run.max_workers=0", "run.overwrite_policy=sometimes", "model.seed=abc"])
    paths = sorted(p.split(":")[0] for p in err.value.problems)
    assert paths == ["model.seed", "run.max_workers", "run.overwrite_policy"]


def test_config_is_frozen():
    cfg = PipelineConfig()
    with pytest.raises(ValidationError):
        cfg.run.max_workers = 9


def test_retrosheet_source_must_be_https_or_an_existing_folder(tmp_path):
    assert build_config({}, [f"sources.retrosheet.base_url={tmp_path}"]).sources.retrosheet.base_url == str(tmp_path)
    with pytest.raises(ConfigError, match="sources.retrosheet.base_url: .*neither an https"):
        build_config({}, [f"sources.retrosheet.base_url={tmp_path / 'missing'}"])
    with pytest.raises(ConfigError, match="not plain http"):
        build_config({}, ["sources.retrosheet.base_url=http://www.retrosheet.org/gamelogs/"])


def test_bad_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("run:\n  max_workers: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        load_config(path)


def test_missing_file_and_malformed_override(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        parse_overrides(["run.max_workers"])
    with pytest.raises(ConfigError, match="'max_workers' is a value"):
        build_config({"run": {"max_workers": 2}}, ["run.max_workers.deep=1"])


def test_seasons_must_be_ordered():
    with pytest.raises(ConfigError, match="last_season is before"):
        build_config({"data": {"first_season": 2000, "last_season": 1999}})


def test_a_stats_api_url_that_is_not_the_schedule_endpoint_is_refused_by_validation():
    """The box-score and people endpoints are found beside /schedule: any other URL would fail only
    when A runs (exit 1); validation says so first (exit 2 from the command line)."""
    with pytest.raises(ConfigError) as err:
        build_config({}, ["sources.schedule.statsapi_url=https://statsapi.mlb.com/api/v1/games"])
    assert err.value.problems == ["sources.schedule.statsapi_url: Value error, 'https://statsapi.mlb.com/api/v1/games' "
                                  "must be the Stats API's schedule endpoint (ending in /schedule)"]
    assert build_config({}, ["sources.schedule.statsapi_url=http://127.0.0.1:8765/api/v1/schedule"])


def test_an_as_of_date_outside_the_seasons_there_are_is_refused_by_validation():
    """`backtest --season 1800` was already exit 2; a run's as-of date is held to the same: not before
    data.first_season, not after tomorrow where the games are scheduled (no season before it to read)."""
    with pytest.raises(ConfigError) as err:
        build_config({}, ["run.as_of=1800-01-01"])
    assert err.value.problems == ["run.as_of 1800-01-01 is before data.first_season (1990): no season to learn from"]
    with pytest.raises(ConfigError, match=r"run.as_of 2030-01-01 is after tomorrow \(\d{4}-\d\d-\d\d in "
                                          r"America/New_York\)"):
        build_config({}, ["run.as_of=2030-01-01"])
    with pytest.raises(ConfigError, match="run.as_of 2020-07-01 is before data.first_season .2021."):
        build_config({"data": {"first_season": 2021}}, ["run.as_of=2020-07-01"])
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    assert build_config({}, [f"run.as_of={tomorrow - dt.timedelta(days=1)}"]).run.as_of  # today is fine


def test_a_config_that_is_not_a_regular_file_or_is_huge_is_refused_before_reading(tmp_path):
    """`--config /dev/zero` read without end, then MemoryError; now one line at once."""
    with pytest.raises(ConfigError) as err:
        load_config("/dev/zero")
    assert err.value.problems == ["/dev/zero: not a regular file"]
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 1_000_001)
    with pytest.raises(ConfigError, match=r"big.yaml: 1,000,001 bytes, larger than any config \(1,000,000 at most\)"):
        load_config(big)
