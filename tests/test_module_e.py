"""E · quality, run through its main(cfg) on the tiny league."""
from modules import e_quality


def test_the_report_counts_games_and_sees_no_gap(tiny_store):
    cfg, store = tiny_store
    result = e_quality.main(cfg)
    report = store.read_json("data_quality_report")
    assert result.metrics == {"quarantined": 0, "duplicates": 0, "unmatched_players": 0}
    assert report["games"] == 5 and report["scheduled"] == 1
    assert report["games_per_season"] == {"2023": 3, "2024": 2}
    # every team's game numbers run 1, 2, 3 with nothing missing: coverage 1 for all four team-seasons
    assert report["coverage"] == {"gaps": [], "min": 1.0, "team_seasons": 4}
    assert report["anomalies"]["short_games_not_suspended"] == 0  # every game went 54 outs
