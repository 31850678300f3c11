"""The nightly job's live schedule: the Stats API client against recorded payloads on loopback."""
import datetime as dt
import http.server
import json

import pytest

from tests import local_server
from tests.conftest import ROOT, free_port, run_pipeline
from utils.sources.common import SourceError
from utils.sources.crosswalk import Crosswalk
from utils.sources.statsapi import LiveIds, StatsApi

FIXTURE = ROOT / "tests" / "data" / "statsapi_schedule.json"
DAY = dt.date(2024, 7, 14)
# The fixture's probable pitchers as the `people` endpoint answers (Lahman knows all but the newcomer).
PEOPLE = {"people": [{"id": 10, "fullName": "Gerrit Cole", "birthDate": "1990-09-08"},
                     {"id": 11, "fullName": "Corbin Burnes", "birthDate": "1994-10-22"},
                     {"id": 12, "fullName": "Zack Wheeler", "birthDate": "1990-05-30"},
                     {"id": 13, "fullName": "Nobody Newcomer", "birthDate": "2003-02-01"}]}
URL = "https://statsapi.example/api/v1/schedule"


@pytest.fixture(scope="module")
def crosswalk():
    return Crosswalk.from_lahman()


def answers(schedule: bytes):
    """A fetch that answers the schedule with `schedule` and `people` with PEOPLE."""
    def fetch(url, params, timeout, max_bytes=None):
        return json.dumps(PEOPLE).encode() if url.endswith("/people") else schedule
    return fetch


def slate(schedule: bytes, crosswalk, tmp_path, url=URL):
    api = StatsApi(url, 5, answers(schedule), 1000, tmp_path)
    return api.day_schedule(DAY, LiveIds(crosswalk))


def test_payload_maps_to_retrosheet_codes_and_pitcher_ids(crosswalk, tmp_path):
    frame = slate(FIXTURE.read_bytes(), crosswalk, tmp_path)
    # the postponed game and the exhibition (gameType E) are not on the slate
    assert frame[["visiting_team", "home_team", "game_number"]].values.tolist() == [
        ["NYA", "BAL", "0"], ["ATL", "PHI", "1"], ["ATL", "PHI", "2"]]
    assert frame["h_starting_pitcher_id"].tolist()[:2] == ["burnc002", "wheez001"]
    # no probable pitcher yet: none; one Lahman does not know: a debutant with his own stable id
    assert frame["v_starting_pitcher_id"].tolist()[0] == "coleg001"
    assert frame["v_starting_pitcher_id"].isna().tolist() == [False, True, False]
    assert frame["v_starting_pitcher_id"].tolist()[2] == "mlbam:13"
    assert frame["v_starting_pitcher_name"].tolist()[2] == "Nobody Newcomer"
    assert frame["day_night"].tolist() == ["D", "D", "N"]
    # leagues and parks come from the team and venue tables (every real listing names its venue)
    assert frame[["visiting_league", "home_league"]].values.tolist() == [["AL", "AL"], ["NL", "NL"], ["NL", "NL"]]
    assert frame["park_id"].tolist() == ["BAL12", "PHI13", "PHI13"]
    # each game keeps the Stats API's gamePk, so a reader of the predictions can find it there
    listed = [g["gamePk"] for g in json.loads(FIXTURE.read_text())["dates"][0]["games"]
              if g.get("gameType", "R") == "R" and not g["status"]["detailedState"].startswith("Postponed")]
    assert frame["game_pk"].tolist() == listed and frame["game_pk"].dtype == "Int64"


def test_unexpected_payload_and_network_errors_are_one_line(crosswalk, tmp_path):
    with pytest.raises(SourceError, match=r"^https://statsapi.example/api/v1/schedule\?sportId=1&.*: unexpected "
                                          r"schedule payload \(KeyError"):
        slate(b'{"dates": [{}]}', crosswalk, tmp_path)
    team = json.loads(FIXTURE.read_text())
    team["dates"][0]["games"][0]["teams"]["home"]["team"]["id"] = 999
    with pytest.raises(SourceError, match="unknown Stats API team id 999"):
        slate(json.dumps(team).encode(), crosswalk, tmp_path)


class FakeStatsApi(http.server.BaseHTTPRequestHandler):
    """The recorded schedule on loopback; answers with the queued status codes first (503, 429, 404...)."""
    statuses: list[int] = []
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        FakeStatsApi.seen.append(self.path)
        status = FakeStatsApi.statuses.pop(0) if FakeStatsApi.statuses else 200
        fixture = json.dumps(PEOPLE).encode() if self.path.startswith("/api/v1/people") else FIXTURE.read_bytes()
        body = fixture if status == 200 else b"busy"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def statsapi():
    FakeStatsApi.statuses, FakeStatsApi.seen = [], []
    with local_server.serving(FakeStatsApi) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/schedule"


@pytest.mark.slow
def test_live_mode_predicts_the_fetched_slate_and_a_dead_source_keeps_the_last_predictions(statsapi, mirror, tmp_path,
                                                                                           shared_cache):
    from utils.store.artifacts import ArtifactStore

    base = ["run", "--legacy-executor", "--as-of", DAY.isoformat(), "--set", f"sources.retrosheet.base_url={mirror}",
            "--set", f"paths.artifacts={tmp_path}", "--set", "data.first_season=2021", "--set", "model.train_seasons=2",
            "--set", "sources.schedule.mode=live", "--set", "sources.retry.backoff_seconds=0", *shared_cache]
    proc = run_pipeline(*base, "--set", f"sources.schedule.statsapi_url={statsapi}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    store = ArtifactStore(tmp_path, ROOT / "schemas")
    predictions = store.read_frame("predictions")
    assert predictions["game_id"].tolist() == ["BAL202407140", "PHI202407141", "PHI202407142"]
    assert predictions["home_starter_id"].tolist()[0] == "burnc002"
    # the published copy names the teams (Lahman's names) and carries the gamePk of the live slate
    published = store.read_json("predictions_json")["games"]
    assert [(g["game_id"], g["home_team_name"]) for g in published] == [
        ("BAL202407140", "Baltimore Orioles"), ("PHI202407141", "Philadelphia Phillies"),
        ("PHI202407142", "Philadelphia Phillies")]
    assert all(isinstance(g["game_pk"], int) for g in published)
    good = store.verify("predictions")
    dead = f"http://127.0.0.1:{free_port()}/api/v1/schedule"
    proc = run_pipeline(*base, "--set", f"sources.schedule.statsapi_url={dead}")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: module A (ingest) failed: {dead}: ConnectionError")
    assert store.verify("predictions") == good


def fixture_with(edit) -> bytes:
    doc = json.loads(FIXTURE.read_text())
    edit(doc["dates"][0]["games"])
    return json.dumps(doc).encode()


@pytest.mark.parametrize("edit, message", [
    (lambda games: games[0].update(officialDate="2024-07-15"),
     "game 1: dated '2024-07-15', not the requested 2024-07-14"),
    (lambda games: games[1]["teams"]["away"]["team"].update(id=143), "game 2: PHI listed as both home and away team"),
    (lambda games: games[0]["teams"]["home"]["probablePitcher"].update(fullName=12345),
     "game 1: home probable pitcher's name '12345' is not a name"),
    (lambda games: games[0]["teams"]["home"]["probablePitcher"].update(fullName="x" * 500),
     "game 1: home probable pitcher's name"),
    # the exhibition game is not counted
    (lambda games: games.extend([games[0]] * 60), "64 games on 2024-07-14, more than any day's slate"),
])
def test_a_payload_that_cannot_be_right_is_one_line_naming_url_and_game(edit, message, crosswalk, tmp_path):
    with pytest.raises(SourceError) as err:
        slate(fixture_with(edit), crosswalk, tmp_path)
    assert str(err.value).startswith(URL + "?sportId=1&gameType=R&startDate=2024-07-14&endDate=2024-07-14")
    assert str(err.value).split(": ", 1)[1].startswith(message)
    assert "\n" not in str(err.value)


def test_an_absurdly_large_payload_is_refused_before_parsing(crosswalk, tmp_path):
    huge = b'{"dates": [' + b" " * 3_000_000 + b"]}"
    with pytest.raises(SourceError, match=r"schedule payload of 3,000,013 bytes, more than any \(2,000,000"):
        slate(huge, crosswalk, tmp_path)


def test_a_transient_failure_is_asked_again_with_backoff_and_a_404_is_not(statsapi, crosswalk, tmp_path):
    from utils.sources.common import http_get, with_retries

    waits = []
    fetch = with_retries(http_get, retries=3, backoff_seconds=2.0, sleep=waits.append, jitter=lambda: 0.0)
    FakeStatsApi.statuses = [503, 429]
    frame = StatsApi(statsapi, 5, fetch, 1000, tmp_path).day_schedule(DAY, LiveIds(crosswalk))
    # two failures, the schedule, then the people endpoint for the four probable pitchers
    assert len(frame) == 3 and len(FakeStatsApi.seen) == 4 and waits == [2.0, 4.0]  # 2 s, then doubled
    FakeStatsApi.statuses, FakeStatsApi.seen, waits[:] = [404], [], []
    with pytest.raises(SourceError, match=r"not found \(404\)$"):
        fetch(statsapi, None, 5)
    assert len(FakeStatsApi.seen) == 1 and waits == []  # asking again cannot find it
    FakeStatsApi.statuses, FakeStatsApi.seen = [500] * 5, []
    with pytest.raises(SourceError, match=r"^http://127.0.0.1:\d+/api/v1/schedule: HTTP 500 \(after 4 attempts\)$"):
        fetch(statsapi, None, 5)
    assert len(FakeStatsApi.seen) == 4 and waits == [2.0, 4.0, 8.0]


def test_the_configured_retries_reach_the_live_schedule(statsapi, mirror, tmp_path, shared_cache):
    """Through the command line: sources.retry.retries=1 survives one 503 and not two."""
    common = ["run", "--modules", "A", "--legacy-executor", "--as-of", DAY.isoformat(),
              "--set", f"sources.schedule.statsapi_url={statsapi}", "--set", "sources.schedule.mode=live",
              "--set", f"sources.retrosheet.base_url={mirror}", "--set", "data.first_season=2024",
              "--set", f"paths.artifacts={tmp_path}", "--set", "sources.retry.retries=1",
              "--set", "sources.retry.backoff_seconds=0", "--set", "sources.retrosheet.events_url=off", *shared_cache]
    FakeStatsApi.statuses = [503]
    assert run_pipeline(*common).returncode == 0
    assert [p.split("?")[0] for p in FakeStatsApi.seen] == ["/api/v1/schedule"] * 2 + ["/api/v1/people"]
    FakeStatsApi.statuses, FakeStatsApi.seen = [503, 503], []
    proc = run_pipeline(*common)
    assert proc.returncode == 1 and len(FakeStatsApi.seen) == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("HTTP 503 (after 2 attempts)"), proc.stderr
