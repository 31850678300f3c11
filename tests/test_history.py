"""Settled history is kept (utils/engine/history.py): a night builds only the rows of games dated on or
after the first day its inputs changed, and what it writes is what a from-scratch build writes, byte
for byte: night after night, after a corrected game-log line, after a changed parameter."""
from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from modules.registry import REGISTRY
from tests.conftest import logged, session_root
from utils.config import build_config
from utils.engine import history
from utils.engine.one_stage import run_stage
from utils.store.artifacts import ArtifactStore

KEPT = [s for s in REGISTRY if s.history]
FEATURES = [name for s in KEPT for name in s.outputs]
NIGHTS = [f"2023-06-{day:02d}" for day in range(1, 8)]  # a week of consecutive nights


def test_the_stages_that_keep_history_are_the_feature_stages():
    assert {s.id for s in KEPT} == {"C", "D", "F", "H"}
    assert all("games" in s.inputs and set(s.history) <= set(s.inputs) for s in KEPT)


def _frame(days: list[str], values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"date": pd.to_datetime(days), "v": values})


def test_day_digests_change_on_exactly_the_days_whose_rows_change():
    base = _frame(["2023-06-01", "2023-06-01", "2023-06-02", "2023-06-03"], [1.0, 2.0, 3.0, 4.0])
    before = {"games": history.day_digests(base)}
    assert history.first_changed(before, {"games": history.day_digests(base.copy())}) is None
    changed = base.assign(v=[1.0, 2.0, 3.5, 4.0])
    assert history.first_changed(before, {"games": history.day_digests(changed)}) == "2023-06-02"
    appended = pd.concat([base, _frame(["2023-06-04"], [5.0])])
    assert history.first_changed(before, {"games": history.day_digests(appended)}) == "2023-06-04"
    dropped = base.iloc[:3]
    assert history.first_changed(before, {"games": history.day_digests(dropped)}) == "2023-06-03"
    # a day's rows in another order are another day: sums are taken in the rows' order
    swapped = base.iloc[[1, 0, 2, 3]]
    assert history.first_changed(before, {"games": history.day_digests(swapped)}) == "2023-06-01"
    # rows of other days interleaved differently are the same days (A writes rows in one order: season by
    # season, each in its files' order; utils/engine/history.py says why that matters)
    interleaved = base.iloc[[0, 2, 1, 3]]
    assert history.first_changed(before, {"games": history.day_digests(interleaved)}) is None
    # a second dated input counts too, and the earliest change wins
    more = {"games": before["games"], "player_games": history.day_digests(base)}
    assert history.first_changed(more, {"games": before["games"],
                                        "player_games": history.day_digests(changed)}) == "2023-06-02"


def test_an_input_s_digests_are_computed_once_for_its_file_and_columns(monkeypatch):
    frame = _frame(["2023-06-01", "2023-06-02"], [1.0, 2.0])
    monkeypatch.setattr(history, "_DIGESTS", {})  # nothing remembered from another test
    calls = []
    real = history.day_digests
    monkeypatch.setattr(history, "day_digests", lambda f: calls.append(list(f.columns)) or real(f))
    first = history.input_day_digests(frame, "sha-of-the-file")
    assert first == real(frame) and history.input_day_digests(frame, "sha-of-the-file") == first
    assert len(calls) == 1  # the second stage reading that file's columns reuses them
    history.input_day_digests(frame[["date"]], "sha-of-the-file")  # other columns: other digests
    history.input_day_digests(frame, "sha-of-another-file")
    history.input_day_digests(frame, None)  # no file hash: digested every time
    history.input_day_digests(frame, None)
    assert calls == [["date", "v"], ["date"], ["date", "v"], ["date", "v"], ["date", "v"]]
    first["2023-06-01"] = "changed by its caller"
    assert history.input_day_digests(frame, "sha-of-the-file")["2023-06-01"] != "changed by its caller"


def test_a_row_with_no_date_is_refused():
    with pytest.raises(ValueError, match="1 row"):
        history.day_digests(pd.DataFrame({"date": pd.to_datetime(["2023-06-01", None]), "v": [1, 2]}))


def _cfg(root: Path, mirror: Path, cache: Path, night: str, *overrides: str):
    return build_config({"paths": {"artifacts": str(root), "cache_root": str(cache),
                                   "schemas": str(Path(__file__).parent.parent / "schemas")},
                         "sources": {"retrosheet": {"base_url": str(mirror)}, "schedule": {"mode": "replay"}},
                         "data": {"first_season": 2022}, "model": {"train_seasons": 1},
                         "run": {"as_of": night, "executor": "legacy"}, "versioning": {"backend": "none"}},
                        list(overrides))


def _night(cfg, stages: str) -> None:
    for sid in stages:
        run_stage(cfg, REGISTRY[sid])


def _scratch(incremental: Path, scratch: Path, mirror: Path, cache: Path, night: str) -> None:
    """The night's feature stages from scratch, on the incremental root's A and B outputs."""
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "data").mkdir(parents=True)
    for name in ("games", "player_games", "lahman_pitching", "lahman_batting"):
        for suffix in (".parquet", ".parquet.meta.json"):
            shutil.copy(incremental / "data" / f"{name}{suffix}", scratch / "data" / f"{name}{suffix}")
    _night(_cfg(scratch, mirror, cache, night, "run.reuse_history=false"), "CDFH")


def _same_bytes(a: Path, b: Path) -> list[str]:
    read = lambda root, name: (root / "data" / f"{name}.parquet").read_bytes()  # noqa: E731
    return [n for n in FEATURES if read(a, n) != read(b, n)]


def _built(records: list[logging.LogRecord]) -> dict[str, str]:
    return {r.getMessage()[0]: r.getMessage() for r in records if r.name == "mlb.runner" and " built" in r.getMessage()}


def _walk(base: Path, mirror: Path, cache: Path, nights: list[str], compared: list[str] | None = None) -> dict:
    """Consecutive nights on the 2022-2023 slice, each run on the last night's outputs, each (or each of
    `compared`) compared with a from-scratch build of the same night."""
    incremental, scratch = base / "incremental", base / "scratch"
    said, differing = {}, {}
    for night in nights:
        with logged("mlb.runner", logging.INFO) as records:
            _night(_cfg(incremental, mirror, cache, night), "ABCDFH")
        said[night] = _built(records)
        if compared is None or night in compared:
            _scratch(incremental, scratch, mirror, cache, night)
            differing[night] = _same_bytes(incremental, scratch)
    return {"base": base, "cache": cache, "mirror": mirror, "incremental": incremental, "scratch": scratch,
            "said": said, "differing": differing, "nights": nights, "last": nights[-1]}


@pytest.fixture(scope="module")
def week(tmp_path_factory, mirror):
    """Two of the nights, the second compared with a from-scratch build (the first builds every row, a
    from-scratch build itself; the slow test walks all seven and compares each), on the session's parsed
    seasons."""
    return _walk(tmp_path_factory.mktemp("history"), mirror, session_root(tmp_path_factory), NIGHTS[:2], NIGHTS[1:2])


def _assert_equal_and_incremental(walk: dict) -> None:
    assert walk["differing"] and all(night in walk["nights"] for night in walk["differing"])
    assert walk["differing"] == {night: [] for night in walk["differing"]}
    first, *rest = walk["nights"]
    assert all("every row built" in said for said in walk["said"][first].values())
    for night in rest:
        said = walk["said"][night]
        yesterday = (pd.Timestamp(night) - pd.Timedelta(days=1)).date().isoformat()
        for sid in "CDFH":
            # yesterday's games got their results, and tonight's slate is new: nothing earlier is rebuilt
            assert f"from {yesterday} on built" in said[sid], said[sid]
            kept = int(said[sid].split(" built, ")[1].split(" kept")[0])
            assert kept > 3000


def test_consecutive_nights_equal_the_from_scratch_build_byte_for_byte(week):
    _assert_equal_and_incremental(week)
    store = ArtifactStore(week["incremental"], Path(__file__).parent.parent / "schemas")
    games = store.read("games")
    assert len(store.read("starter_features")) == len(games) > 3000  # a season and two months: every row


@pytest.mark.slow
def test_a_week_of_nights_equals_the_from_scratch_build_byte_for_byte(tmp_path, tmp_path_factory, mirror):
    _assert_equal_and_incremental(_walk(tmp_path, mirror, session_root(tmp_path_factory), NIGHTS))


def _corrected_mirror(mirror: Path, folder: Path, day: str) -> Path:
    """The mirror with one 2023 game-log line of `day` changed: its home team scored ten more runs."""
    from utils.sources.gamelogs import FIELD_NAMES

    folder.mkdir(parents=True, exist_ok=True)
    for path in mirror.glob("gl*.zip"):
        (folder / path.name).symlink_to(path.resolve())
    (folder.parent / "events").symlink_to((mirror.parent / "events").resolve())
    (folder / "gl2023.zip").unlink()
    with zipfile.ZipFile(mirror / "gl2023.zip") as real:
        name = real.namelist()[0]
        lines = real.read(name).decode("latin-1").splitlines(keepends=True)
    at = {f: i for i, f in enumerate(FIELD_NAMES)}
    stamp = day.replace("-", "")
    index = next(i for i, line in enumerate(lines) if line.startswith(f'"{stamp}"'))
    fields = lines[index].rstrip("\r\n").split(",")
    fields[at["home_score"]] = str(int(fields[at["home_score"]]) + 10)
    lines[index] = ",".join(fields) + "\r\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as fixed:
        fixed.writestr(name, "".join(lines).encode("latin-1"))
    (folder / "gl2023.zip").write_bytes(buffer.getvalue())
    return folder


def test_a_corrected_game_rebuilds_the_rows_from_its_day_and_equals_scratch(week):
    fixed = _corrected_mirror(week["mirror"], week["base"] / "fixed" / "gamelogs", "2023-05-10")
    night = week["last"]
    with logged("mlb.runner", logging.INFO) as records:
        _night(_cfg(week["incremental"], fixed, week["cache"], night), "ABCDFH")
    said = _built(records)
    for sid in "CDFH":
        assert "from 2023-05-10 on built" in said[sid], said[sid]
    _scratch(week["incremental"], week["scratch"], fixed, week["cache"], night)
    assert _same_bytes(week["incremental"], week["scratch"]) == []


def test_the_dry_run_says_what_will_be_kept_and_why_not(week):
    from utils.engine.plan import describe_outputs, make_plan

    def effects(*overrides: str) -> str:
        cfg = _cfg(week["incremental"], week["mirror"], week["cache"], week["last"], *overrides)
        store = ArtifactStore.from_config(cfg)
        return describe_outputs(REGISTRY, make_plan(REGISTRY, ["F"], store), store, "warn", cfg)["starter_features"]

    assert effects() == ("replace; rows kept up to the first day its inputs change (they were built from games up to "
                         f"{week['last']}), the rest rebuilt")
    assert effects("features.pitchers.form_starts=8") == (
        "replace; every row rebuilt: changed since the rows were built: parameter pitchers")
    assert effects("run.reuse_history=false") == "replace; every row rebuilt: run.reuse_history is false"


def test_a_changed_parameter_rebuilds_every_row_of_its_stage(week):
    night = week["last"]
    with logged("mlb.runner", logging.INFO) as records:
        _night(_cfg(week["incremental"], week["mirror"], week["cache"], night, "features.form.window=12"), "D")
    assert "every row built (changed since the rows were built: parameter form)" in _built(records)["D"]


def test_a_damaged_record_costs_a_full_rebuild_never_a_wrong_row(week):
    cfg = _cfg(week["incremental"], week["mirror"], week["cache"], week["last"])
    store, spec = ArtifactStore.from_config(cfg), REGISTRY["F"]
    built = week["incremental"] / "data" / "starter_features.parquet"
    before = built.read_bytes()
    [record] = store.cache_dir("history").glob(f"{history._stem(spec, store)}-*.json")
    record.write_text('{"version": 1, "outputs": {}, "days": {}}')  # its checksum no longer matches
    with logged("mlb.runner", logging.INFO) as records:
        run_stage(cfg, spec)
    assert "every row built (no record of the days its rows were built from)" in _built(records)["F"]
    assert built.read_bytes() == before


def test_the_kept_rows_are_read_after_the_stage_function_and_a_changed_file_costs_a_full_rebuild(week, monkeypatch):
    """The previous output is read for the merge, not held through the stage function (a night's F would
    carry its old rows through its peak); if it no longer is the file its record describes (its bytes are
    checked before the stage runs), every row is built, once, and the same bytes come out."""
    import modules.f_starters as f_starters

    cfg = _cfg(week["incremental"], week["mirror"], week["cache"], week["last"])
    spec = REGISTRY["F"]
    run_stage(cfg, spec)  # a record of today's outputs
    built = week["incremental"] / "data" / "starter_features.parquet"
    before = built.read_bytes()
    order, real_load, real_rate = [], ArtifactStore.load, f_starters.rate_starters
    monkeypatch.setattr(ArtifactStore, "load", lambda self, name, *a, **k: order.append(name) or real_load(
        self, name, *a, **k))
    monkeypatch.setattr(f_starters, "rate_starters", lambda *a, **k: order.append("rate") or real_rate(*a, **k))
    run_stage(cfg, spec)
    assert order.count("rate") == 1 and order.index("rate") < order.index("starter_features")
    built.write_bytes(before[:-1] + bytes([before[-1] ^ 1]))  # changed after its record was made
    order.clear()
    with logged("mlb.runner", logging.INFO) as records:
        run_stage(cfg, spec)
    said = _built(records)["F"]
    assert "every row built (" in said and "starter_features.parquet: SHA-256 mismatch" in said, said
    assert order.count("rate") == 1 and built.read_bytes() == before


def test_another_pandas_rebuilds_every_row(week, monkeypatch):
    cfg = _cfg(week["incremental"], week["mirror"], week["cache"], week["last"])
    run_stage(cfg, REGISTRY["C"])  # its record, with this pandas
    real = history.libraries()
    monkeypatch.setattr(history, "libraries", lambda: {**real, "pandas": "0.0"})
    with logged("mlb.runner", logging.INFO) as records:
        run_stage(cfg, REGISTRY["C"])
    assert (f"every row built (changed since the rows were built: pandas {real['pandas']} -> 0.0)"
            in _built(records)["C"])


def test_a_well_hashed_record_of_another_shape_costs_a_full_rebuild(week):
    cfg = _cfg(week["incremental"], week["mirror"], week["cache"], week["last"])
    store, spec = ArtifactStore.from_config(cfg), REGISTRY["D"]
    run_stage(cfg, spec)  # a record of today's outputs
    outputs = {n: store.meta(n)["sha256"] for n in spec.outputs}
    history.ContentCache(store.cache_dir("history")).publish(  # hashed right, but no key and no days
        history._stem(spec, store), outputs[spec.outputs[0]][:16],
        {".json": history.json.dumps({"version": history.MANIFEST_VERSION, "outputs": outputs}).encode()})
    with logged("mlb.runner", logging.INFO) as records:
        run_stage(cfg, spec)
    assert "every row built (its record cannot be read)" in _built(records)["D"]


def test_a_suspended_game_counts_on_its_own_day_whenever_its_result_comes(week):
    """C's games in the last seven days count a game on the day it was played: a game suspended on D0
    and completed days later changes no row dated before its completion, pending or completed."""
    from modules.c_context import build_context

    games = ArtifactStore(week["incremental"], Path(__file__).parent.parent / "schemas").read("games")
    d0 = pd.Timestamp("2023-05-10")
    next_day = set(games.loc[games["date"] == d0 + pd.Timedelta(days=1), ["home_team", "away_team"]].stack())
    target = games.index[(games["date"] == d0) & games["home_team"].isin(next_day)][0]  # its team plays the next day
    pending = games[games["date"] <= d0 + pd.Timedelta(days=1)].copy()
    pending.loc[target, ["played", "result_date"]] = [False, pd.NaT]
    completed = games[games["date"] <= d0 + pd.Timedelta(days=5)].copy()
    completed.loc[target, "result_date"] = d0 + pd.Timedelta(days=3)
    early = build_context(pending)
    late = build_context(completed).set_index("game_id").loc[early["game_id"]].reset_index()
    pd.testing.assert_frame_equal(early, late, check_exact=True)


def test_merge_keeps_the_rows_before_the_day_and_refuses_a_kept_row_missing():
    rows = pd.DataFrame({"game_id": ["a1", "b1", "a2", "b2"], "date": pd.to_datetime(
        ["2023-06-01", "2023-06-01", "2023-06-02", "2023-06-02"])})
    kept = pd.DataFrame({"game_id": ["b1", "a1", "zz"], "v": [2.0, 1.0, 9.0]})  # another order, one row no more
    new = pd.DataFrame({"game_id": ["b2", "a2"], "v": [4.0, 3.0]})
    merged = history.merge(kept, new, rows, "2023-06-02", "game_id")
    assert merged["game_id"].tolist() == ["a1", "b1", "a2", "b2"] and merged["v"].tolist() == [1.0, 2.0, 3.0, 4.0]
    from utils.store.artifacts import ArtifactError

    with pytest.raises(ArtifactError, match=r"the kept rows lack game_id \['b1'\]"):
        history.merge(kept.iloc[1:], new, rows, "2023-06-02", "game_id")


def test_a_stage_that_loads_some_columns_of_an_input_writes_what_all_of_them_give(week, tmp_path):
    """`input_columns` (E, F, H read part of player_games): on the slice's real lines, each such stage
    writes the very bytes it writes when it loads every column, so no column it reads is left out."""
    import dataclasses
    import shutil

    shutil.copytree(week["incremental"] / "data", tmp_path / "data")
    cfg = _cfg(tmp_path, week["mirror"], week["cache"], week["last"], "run.reuse_history=false")
    store = ArtifactStore.from_config(cfg)
    assert len(store.read_frame("player_games")) > 10_000
    projected = [spec for spec in REGISTRY if spec.input_columns]
    assert {spec.id for spec in projected} == {"E", "F", "H"}
    for spec in projected:
        written = []
        for which in (spec, dataclasses.replace(spec, input_columns={})):
            run_stage(cfg, which)
            written.append([store.resolve_output_path(name).read_bytes() for name in spec.outputs])
        assert written[0] == written[1], spec.id
