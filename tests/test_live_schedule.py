"""The nightly job's live schedule: the Stats API client against recorded payloads on loopback."""
import datetime as dt
import http.server
import json
import threading

import pytest

from tests.conftest import ROOT, free_port, run_pipeline
from utils.sources import ScheduleSource, SourceError, lahman_name_lookup, parse_statsapi_schedule

FIXTURE = ROOT / "tests" / "data" / "statsapi_schedule.json"
DAY = dt.date(2024, 7, 14)
IDS = {"Gerrit Cole": "coleg001", "Corbin Burnes": "burnc002", "Zack Wheeler": "wheez001"}


def test_payload_maps_to_retrosheet_codes_and_pitcher_ids():
    frame = parse_statsapi_schedule(json.loads(FIXTURE.read_text()), DAY, IDS.get)
    # the postponed game and the exhibition (gameType E) are not on the slate
    assert frame[["visiting_team", "home_team", "game_number"]].values.tolist() == [
        ["NYA", "BAL", "0"], ["ATL", "PHI", "1"], ["ATL", "PHI", "2"]]
    assert frame["h_starting_pitcher_id"].tolist()[:2] == ["burnc002", "wheez001"]
    # no probable pitcher yet, or one Lahman does not know: a debutant, not an error
    assert frame["v_starting_pitcher_id"].isna().tolist() == [False, True, True]
    assert frame["v_starting_pitcher_name"].tolist()[2] == "Nobody Newcomer"
    assert frame["day_night"].tolist() == ["D", "D", "N"]


def test_names_resolve_through_lahman_people():
    lookup = lahman_name_lookup()
    assert lookup("Gerrit Cole") == "coleg001" and lookup("gerrit cole") == "coleg001"
    assert lookup("Nobody Newcomer") is None


def test_unexpected_payload_and_network_errors_are_one_line():
    bad = ScheduleSource("https://statsapi.example/schedule", 5, IDS.get, fetch=lambda *a: b'{"dates": [{}]}')
    with pytest.raises(SourceError,
                       match=r"^https://statsapi.example/schedule: unexpected schedule payload \(KeyError"):
        bad.schedule_for(DAY)
    team = json.loads(FIXTURE.read_text())
    team["dates"][0]["games"][0]["teams"]["home"]["team"]["id"] = 999
    odd = ScheduleSource("u", 5, IDS.get, fetch=lambda *a: json.dumps(team).encode())
    with pytest.raises(SourceError, match="unknown Stats API team id 999"):
        odd.schedule_for(DAY)


class StatsApi(http.server.BaseHTTPRequestHandler):
    """The recorded schedule on loopback; answers with the queued status codes first (503, 429, 404...)."""
    statuses: list[int] = []
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        StatsApi.seen.append(self.path)
        status = StatsApi.statuses.pop(0) if StatsApi.statuses else 200
        body = FIXTURE.read_bytes() if status == 200 else b"busy"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def statsapi():
    StatsApi.statuses, StatsApi.seen = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StatsApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/schedule"
    server.shutdown()


@pytest.mark.slow
def test_live_mode_predicts_the_fetched_slate_and_a_dead_source_keeps_the_last_predictions(statsapi, mirror, tmp_path):
    from utils.artifacts import ArtifactStore

    base = ["run", "--legacy-executor", "--as-of", DAY.isoformat(), "--set", f"sources.retrosheet.base_url={mirror}",
            "--set", f"paths.artifacts={tmp_path}", "--set", "data.first_season=2021", "--set", "model.train_seasons=2",
            "--set", "sources.schedule.mode=live", "--set", "sources.retry.backoff_seconds=0"]
    proc = run_pipeline(*base, "--set", f"sources.schedule.statsapi_url={statsapi}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    store = ArtifactStore(tmp_path, ROOT / "schemas")
    predictions = store.read_frame("predictions")
    assert predictions["game_id"].tolist() == ["BAL202407140", "PHI202407141", "PHI202407142"]
    assert predictions["home_starter_id"].tolist()[0] == "burnc002"
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
    (lambda games: games.extend([games[0]] * 60), "65 games on 2024-07-14, more than any day's slate"),
])
def test_a_payload_that_cannot_be_right_is_one_line_naming_url_and_game(edit, message):
    source = ScheduleSource("https://statsapi.example/schedule", 5, IDS.get, fetch=lambda *a: fixture_with(edit))
    with pytest.raises(SourceError) as err:
        source.schedule_for(DAY)
    assert str(err.value).startswith(f"https://statsapi.example/schedule: {message}")
    assert "\n" not in str(err.value)


def test_an_absurdly_large_payload_is_refused_before_parsing():
    huge = b'{"dates": [' + b" " * 6_000_000 + b"]}"
    source = ScheduleSource("https://statsapi.example/schedule", 5, IDS.get, fetch=lambda *a: huge)
    with pytest.raises(SourceError, match=r"schedule payload of 6,000,013 bytes is larger than any day's slate"):
        source.schedule_for(DAY)


def test_a_transient_failure_is_asked_again_with_backoff_and_a_404_is_not(statsapi):
    from utils.sources import http_get, with_retries

    waits = []
    fetch = with_retries(http_get, retries=3, backoff_seconds=2.0, sleep=waits.append)
    StatsApi.statuses = [503, 429]
    frame = ScheduleSource(statsapi, 5, IDS.get, fetch=fetch).schedule_for(DAY)
    assert len(frame) == 3 and len(StatsApi.seen) == 3 and waits == [2.0, 4.0]  # 2 s, then doubled
    StatsApi.statuses, StatsApi.seen, waits[:] = [404], [], []
    with pytest.raises(SourceError, match=r"not found \(404\)$"):
        fetch(statsapi, None, 5)
    assert len(StatsApi.seen) == 1 and waits == []  # asking again cannot find it
    StatsApi.statuses, StatsApi.seen = [500] * 5, []
    with pytest.raises(SourceError, match=r"^http://127.0.0.1:\d+/api/v1/schedule: HTTP 500 \(after 4 attempts\)$"):
        fetch(statsapi, None, 5)
    assert len(StatsApi.seen) == 4 and waits == [2.0, 4.0, 8.0]


def test_the_configured_retries_reach_the_live_schedule(statsapi, mirror, tmp_path):
    """Through the command line: sources.retry.retries=1 survives one 503 and not two."""
    common = ["run", "--modules", "A", "--legacy-executor", "--as-of", DAY.isoformat(),
              "--set", f"sources.schedule.statsapi_url={statsapi}", "--set", "sources.schedule.mode=live",
              "--set", f"sources.retrosheet.base_url={mirror}", "--set", "data.first_season=2024",
              "--set", f"paths.artifacts={tmp_path}", "--set", "sources.retry.retries=1",
              "--set", "sources.retry.backoff_seconds=0"]
    StatsApi.statuses = [503]
    assert run_pipeline(*common).returncode == 0 and len(StatsApi.seen) == 2
    StatsApi.statuses, StatsApi.seen = [503, 503], []
    proc = run_pipeline(*common)
    assert proc.returncode == 1 and len(StatsApi.seen) == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("HTTP 503 (after 2 attempts)"), proc.stderr
