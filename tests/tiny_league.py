"""A tiny league for the per-stage tests: two teams, a handful of hand-made games over two seasons.

Each game is a real Retrosheet line (Pirates at Marlins, 2024-03-28, from the local mirror) with the
fields a test reasons about set by hand: date, teams, parks, scores, line scores (every run in the
first inning, so no late-inning runs), and nine innings. The stages then run on it through their
own `main(cfg)`, in a temporary catalog.
"""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from utils.config import PipelineConfig, build_config
from utils.sources.gamelogs import FIELD_NAMES, read_season_zip

# (date, home, away, home runs, away runs). New York hosts Boston, then Boston hosts New York.
GAMES = [
    ("2023-04-01", "NYA", "BOS", 5, 3),
    ("2023-04-02", "NYA", "BOS", 2, 4),
    ("2023-04-04", "BOS", "NYA", 7, 1),
    ("2024-04-01", "NYA", "BOS", 3, 1),
    ("2024-04-02", "NYA", "BOS", 6, 2),
    ("2024-04-04", "BOS", "NYA", 4, 5),  # the as-of date's game: its result must stay hidden
]
AS_OF = "2024-04-04"
PARKS = {"NYA": "NYC21", "BOS": "BOS07"}
TEMPLATE_LINE = 5  # the 2024 opener in Miami, 12 innings (replaced by nine here)


def _line(template: list[str], date: str, home: str, away: str, hs: int, as_: int, team_game: dict) -> str:
    row = list(template)
    set_ = dict(zip(FIELD_NAMES, range(len(FIELD_NAMES))))
    for team in (home, away):  # each team's game number in its season
        team_game[team] = team_game.get(team, 0) + 1
    row[set_["visiting_game_number"]], row[set_["home_game_number"]] = str(team_game[away]), str(team_game[home])
    row[set_["date"]] = date.replace("-", "")
    row[set_["game_number"]] = "0"
    row[set_["visiting_team"]], row[set_["home_team"]] = away, home
    row[set_["visiting_league"]] = row[set_["home_league"]] = "AL"
    row[set_["visiting_score"]], row[set_["home_score"]] = str(as_), str(hs)
    row[set_["length_outs"]] = "54"
    row[set_["park_id"]] = PARKS[home]
    row[set_["visiting_line_score"]] = f"{as_}00000000"
    row[set_["home_line_score"]] = f"{hs}00000000"
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="").writerow(row)
    return buffer.getvalue()


def write_mirror(folder: Path, real_mirror: Path) -> Path:
    """glYYYY.zip files of the tiny league, laid out like Retrosheet's folder."""
    text = read_season_zip((real_mirror / "gl2024.zip").read_bytes(), 2024, "gl2024.zip")
    template = next(csv.reader([text.splitlines()[TEMPLATE_LINE]]))
    folder.mkdir(parents=True, exist_ok=True)
    for season in ("2023", "2024"):
        team_game: dict[str, int] = {}
        lines = [_line(template, *game, team_game) for game in GAMES if game[0].startswith(season)]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"GL{season}.TXT", "\r\n".join(lines) + "\r\n")
        (folder / f"gl{season}.zip").write_bytes(buffer.getvalue())
    return folder


def tiny_cfg(artifacts: Path, mirror: Path, *overrides: str) -> PipelineConfig:
    return build_config({"paths": {"artifacts": str(artifacts),
                                   "schemas": str(Path(__file__).parent.parent / "schemas")},
                         "sources": {"retrosheet": {"base_url": str(mirror), "events_url": "off"},
                                     "schedule": {"mode": "replay"}},
                         "data": {"first_season": 2023}, "run": {"as_of": AS_OF, "executor": "legacy"},
                         "versioning": {"backend": "none"}}, list(overrides))
