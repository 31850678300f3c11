"""I · assemble: the model table: keys, labels, and every namespaced feature.

Each feature module owns one prefix; a column that two modules both make (the C-vs-H
overwrite risk) or a column outside its module's prefix is an error, never a silent overwrite.
"""
from __future__ import annotations

import pandas as pd

from utils.engine.stages import ModuleResult, StageOutput

FEATURE_SOURCES = {  # artifact -> the prefix(es) its columns must carry
    "context_features": "ctx_",
    "team_form_features": "form_",
    "starter_features": ("sp_", "lu_", "nine_"),
    "team_ratings": "elo_",
    "matchup_features": "mu_",
}
KEYS = ["game_id", "date", "result_date", "season", "game_number", "home_team", "away_team", "home_starter_id",
        "away_starter_id",
        "played", "is_neutral", "is_forfeit", "is_tie"]
LABELS = ["home_win", "home_score", "away_score"]


MATCHED = "_matched"  # merge's indicator: which games a feature table has no row for


class AssemblyError(ValueError):
    """Feature tables that cannot be joined safely."""


def assemble(games: pd.DataFrame, features: dict[str, pd.DataFrame]) -> pd.DataFrame:
    owner: dict[str, str] = {}
    table = games[KEYS + LABELS].copy()
    if table["game_id"].duplicated().any():
        raise AssemblyError(f"games: duplicate game_id {table.loc[table['game_id'].duplicated(), 'game_id'].iloc[0]}")
    for name, frame in features.items():
        prefix = FEATURE_SOURCES[name]
        for col in frame.columns:
            if col == "game_id":
                continue
            if col in owner:
                raise AssemblyError(f"column '{col}' is made by both {owner[col]} and {name}")
            if not col.startswith(prefix):
                raise AssemblyError(f"{name}: column '{col}' lacks the module's prefix {prefix!r}")
            owner[col] = name
        if frame["game_id"].duplicated().any():
            first = frame.loc[frame["game_id"].duplicated(), "game_id"].iloc[0]
            raise AssemblyError(f"{name}: duplicate game_id {first}")
        table = table.merge(frame, on="game_id", how="left", indicator=MATCHED)  # one to one: both sides checked
        missing = table.loc[table[MATCHED] == "left_only", "game_id"]
        if len(missing):
            raise AssemblyError(f"{name}: no row for {missing.nunique()} game(s), e.g. {missing.min()}")
        table = table.drop(columns=MATCHED)
    return table


def assemble_table(games: pd.DataFrame, context_features: pd.DataFrame, team_form_features: pd.DataFrame,
                   starter_features: pd.DataFrame, team_ratings: pd.DataFrame,
                   matchup_features: pd.DataFrame) -> StageOutput:
    features = {"context_features": context_features, "team_form_features": team_form_features,
                "starter_features": starter_features, "team_ratings": team_ratings,
                "matchup_features": matchup_features}
    table = assemble(games, {name: features[name] for name in FEATURE_SOURCES})
    return StageOutput({"model_table": table}, {"features": len(table.columns) - len(KEYS) - len(LABELS)})


def main(cfg) -> ModuleResult:
    """Stage I through the pipeline's runner, as a run does, holding the artifacts root's run lock."""
    from modules.registry import REGISTRY
    from utils.engine.one_stage import run_alone

    return run_alone(cfg, REGISTRY["I"])
