"""A synthetic model table for K and L: 700 decided games over three seasons whose home side wins
with the probability its Elo says, and three games on the as-of date."""
from __future__ import annotations

import numpy as np
import pandas as pd

AS_OF = pd.Timestamp("2024-06-01")


def model_table(seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n, today = 700, 3
    dates = pd.to_datetime(np.sort(rng.choice(pd.date_range("2021-04-01", "2024-05-31").values, n)))
    dates = dates.append(pd.DatetimeIndex([AS_OF] * today))
    teams = np.array(["NYA", "BOS", "TOR", "BAL", "TBA", "CLE"])
    home, away = rng.choice(teams, n + today), rng.choice(teams, n + today)
    away = np.where(home == away, np.roll(teams, 1)[np.searchsorted(teams, home, sorter=np.argsort(teams)) % 6], away)
    elo_diff = rng.normal(24, 60, n + today)
    p_home = 1 / (1 + 10 ** (-elo_diff / 400))
    played = np.arange(n + today) < n
    home_win = np.where(played, (rng.random(n + today) < p_home).astype(int), -1)
    home_score = np.where(played, rng.poisson(4.6, n + today), -1)
    away_score = np.where(played, rng.poisson(4.4, n + today), -1)
    frame = pd.DataFrame({
        "game_id": [f"{h}{d:%Y%m%d}{i % 4}" for i, (h, d) in enumerate(zip(home, dates))],
        "date": dates.astype("datetime64[ms]"), "result_date": dates.where(played).astype("datetime64[ms]"),
        "season": pd.array(dates.year, dtype="Int64"), "game_number": pd.array([0] * (n + today), dtype="Int64"),
        "home_team": pd.array(home, dtype="string"), "away_team": pd.array(away, dtype="string"),
        "home_starter_id": pd.array(["abcd001"] * (n + today), dtype="string"),
        "away_starter_id": pd.array(["efgh001"] * (n + today), dtype="string"),
        "played": played, "is_neutral": False, "is_forfeit": False, "is_tie": False,
        "home_win": pd.Series(home_win, dtype="Int64").where(played),
        "home_score": pd.Series(home_score, dtype="Int64").where(played),
        "away_score": pd.Series(away_score, dtype="Int64").where(played),
        "elo_diff": elo_diff, "elo_p_home": p_home, "ctx_home_field": 1.0,
        "form_diff_pythag": rng.normal(0, 0.05, n + today),
    })
    return frame.drop_duplicates("game_id").reset_index(drop=True)


def schedule(table: pd.DataFrame) -> pd.DataFrame:
    """A's schedule for the as-of date's games of the table (pre-game fields only)."""
    today = table[table["date"] == AS_OF]
    n = len(today)
    text = lambda values: pd.array(values, dtype="string")  # noqa: E731
    return pd.DataFrame({
        "season": pd.array([AS_OF.year] * n, dtype="Int64"), "date": today["date"].to_numpy(),
        "game_number": text(today["game_id"].str[-1]), "day_of_week": text(["Sat"] * n),
        "visiting_team": text(today["away_team"]), "visiting_league": text(["AL"] * n),
        "visiting_game_number": pd.array([60] * n, dtype="Int64"), "home_team": text(today["home_team"]),
        "home_league": text(["AL"] * n), "home_game_number": pd.array([60] * n, dtype="Int64"),
        "day_night": text(["N"] * n), "park_id": text([None] * n),
        "v_starting_pitcher_id": text(today["away_starter_id"]), "v_starting_pitcher_name": text([None] * n),
        "h_starting_pitcher_id": text(today["home_starter_id"]), "h_starting_pitcher_name": text([None] * n),
        "game_pk": pd.array(range(700001, 700001 + n), dtype="Int64"),
        "visiting_team_name": text([f"{t} visitors" for t in today["away_team"]]),
        "home_team_name": text([f"{t} hosts" for t in today["home_team"]]),
    }).reset_index(drop=True)
