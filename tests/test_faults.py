"""Faults the pipeline survives: one line, the right exit code, the last good artifact intact.

Each test here holds a row of docs/faults.md: a fault tried on the pipeline and what it does then.
"""
import errno
import glob
import io
import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

import pipeline
from phase_status import StatusError, load_status, read_status
from tests.conftest import ROOT, TOY_SCHEMAS, free_port, wait_for
from tests.toy_modules import pair_registry, toy_registry
from utils.config import ConfigError, build_config, load_config
from utils.engine.plan import make_plan
from utils.engine.session import execute
from utils.store.artifacts import ArtifactError, ArtifactStore
from utils.store.catalog import STATUS_FILE, safe_path
from utils.store.locking import LockError, RunLock


def cli(capsys, *args):
    """`pipeline.py ARGS` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as done:
        pipeline.main(list(args))
    out, err = capsys.readouterr()
    return done.value.code, out, err


def toy_args(root, *extra):
    return ["run", "--legacy-executor", "--set", f"paths.artifacts={root}", "--set", f"paths.schemas={TOY_SCHEMAS}",
            "--set", "versioning.backend=none", "--as-of", "2024-07-14", *extra]


def run_toy(cfg, registry):
    store = ArtifactStore.from_config(cfg)
    return execute(cfg, registry, make_plan(registry, None, store), store, "legacy", 2), store


# --- a module's outputs are replaced together or not at all -------------------------------------------------


def test_a_module_that_fails_after_writing_leaves_every_previous_output_and_hash(toy_cfg):
    _, store = run_toy(toy_cfg, pair_registry())
    before = {n: store.verify(n) for n in ("doubled", "squared")}
    status, _ = run_toy(toy_cfg, pair_registry("pair_then_fail"))
    assert status.phases["P"].status == "failed"
    assert {n: store.verify(n) for n in ("doubled", "squared")} == before  # neither was replaced
    assert list((store.root / "data").glob(".*tmp")) == []  # nothing staged is left behind


def test_skip_rebuilds_outputs_that_come_from_different_writes(toy_cfg):
    """A run killed between renaming a module's outputs must not leave a mix that 'skip' keeps."""
    _, store = run_toy(toy_cfg, pair_registry())
    squared = store.read_frame("squared")
    store.write_frame("squared", squared)  # valid hash, but another write than its sibling 'doubled'
    skip = build_config(toy_cfg.model_dump(mode="json"), ["run.overwrite_policy=skip"])
    status, _ = run_toy(skip, pair_registry())
    assert status.phases["N"].status == "skipped"
    assert status.phases["P"].status == "success"  # rebuilt, not kept
    assert len({store.meta(n)["batch"] for n in ("doubled", "squared")}) == 1


# --- symbolic links inside the artifacts root are never followed for a write or a delete --------------------


def test_safe_path_refuses_links_and_escapes(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (root / "cache").symlink_to(outside)
    with pytest.raises(ArtifactError, match=r"cache: is a symbolic link inside the artifacts root"):
        safe_path(root, root / "cache" / "parsed" / "x")
    with pytest.raises(ArtifactError, match="outside the artifacts root"):
        safe_path(root, root / ".." / "outside" / "x")
    assert safe_path(root, root / "data" / "x") == root / "data" / "x"


def test_a_sidecar_linked_outside_the_root_is_not_followed_on_read(tmp_path, capsys, monkeypatch):
    """Writes already refused a linked sidecar; a read followed it to the file outside."""
    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    assert cli(capsys, *toy_args(tmp_path))[0] == 0
    store = ArtifactStore(tmp_path, TOY_SCHEMAS)
    sidecar = store.meta_path("numbers")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.json"
    outside.write_text(sidecar.read_text())
    sidecar.unlink()
    sidecar.symlink_to(outside)
    with pytest.raises(ArtifactError, match=r"numbers.parquet.meta.json: is a symbolic link inside the artifacts root"):
        store.verify("numbers")


def test_a_linked_lock_file_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    root = tmp_path / "root"
    root.mkdir()
    (root / ".run.lock").symlink_to(victim)
    with pytest.raises(LockError, match=r"\.run\.lock: is a symbolic link inside the artifacts root"):
        RunLock(root).acquire()
    assert victim.read_text() == "precious"


def test_a_run_refuses_a_linked_log_and_a_linked_parse_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    victim = tmp_path / "victim.log"
    victim.write_text("precious\n")
    root = tmp_path / "root"
    (root / "logs").mkdir(parents=True)
    (root / "logs").rmdir()
    (root / "logs").symlink_to(tmp_path)
    code, _, err = cli(capsys, *toy_args(root))
    assert code == 1 and err.strip().splitlines() == [
        f"error: {root / 'logs'}: is a symbolic link inside the artifacts root; refusing to follow it"]
    assert victim.read_text() == "precious\n" and not (tmp_path / "run-").exists()
    store = ArtifactStore(root, TOY_SCHEMAS)
    (root / "cache").symlink_to(tmp_path)
    with pytest.raises(ArtifactError, match="cache: is a symbolic link"):
        store.cache_dir("parsed")


def test_cleanup_never_removes_anything_outside_the_root(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    old_run = elsewhere / "20000101T000000Z-abcdef"
    old_run.mkdir(parents=True)
    (old_run / "keep.txt").write_text("not the pipeline's")
    root = tmp_path / "root"
    root.mkdir()
    (root / "runs").symlink_to(elsewhere)
    code, _, err = cli(capsys, "cleanup", "--set", f"paths.artifacts={root}")
    assert code == 1 and "runs: is a symbolic link inside the artifacts root" in err and len(err.splitlines()) == 1
    assert (old_run / "keep.txt").exists()
    (root / "runs").unlink()
    (root / "runs").mkdir()
    (root / "runs" / old_run.name).symlink_to(old_run)  # a link among the run folders is passed over
    code, out, _ = cli(capsys, "cleanup", "--set", f"paths.artifacts={root}")
    assert code == 0 and "removed 0 run folder(s)" in out and (old_run / "keep.txt").exists()


def test_a_refusal_names_the_lock_s_holder_on_one_line_whatever_its_file_says(tmp_path, quick_refusal):
    import fcntl

    from utils.store.locking import LockHeld

    lock = tmp_path / ".run.lock"
    lock.write_text(json.dumps({"pid": 7, "host": "box\nerror: FAKE\x1b[2J", "started_at": "x" * 500}))
    with open(lock, "rb") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(LockHeld) as refused:
            RunLock(tmp_path).acquire()
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and message.isprintable() and "pid 7 on box error: FAKE" in message
    assert len(message) < 300


def test_a_lock_file_nested_beyond_reason_is_taken_over_not_a_crash(tmp_path):
    (tmp_path / ".run.lock").write_text("[" * 4096)  # RecursionError in json.loads: a traceback each run
    assert RunLock(tmp_path).holder() is None
    with RunLock(tmp_path) as lock:
        assert lock.holder()["pid"] == os.getpid()


def test_a_module_s_main_takes_the_run_lock(tmp_path, quick_refusal):
    """`m.main(cfg)`, the README's way to run one stage, wrote its outputs while a run held the root. Each
    module's main now takes the run lock first: refused while a run holds it, run once it is free."""
    import importlib

    from modules.registry import REGISTRY
    from utils.store.locking import LockHeld

    cfg = build_config({"paths": {"artifacts": str(tmp_path)}, "run": {"as_of": "2024-07-14"}})
    modules = [importlib.import_module(spec.module) for spec in REGISTRY if not spec.reserved]
    assert len(modules) == 11
    with RunLock(tmp_path):
        for module in modules:
            with pytest.raises(LockHeld, match="another run holds the artifacts root"):
                module.main(cfg)
    assert not (tmp_path / "data").exists()  # nothing read or written
    with pytest.raises(ArtifactError, match="artifact 'games' is missing"):  # past the lock: C reads its input
        importlib.import_module("modules.c_context").main(cfg)
    assert not RunLock(tmp_path).is_held()  # and let go of it


def test_restore_and_cleanup_take_the_run_lock(tmp_path, capsys, quick_refusal):
    with RunLock(tmp_path):
        code, _, err = cli(capsys, "cleanup", "--set", f"paths.artifacts={tmp_path}")
    assert code == 1 and f"another run holds the artifacts root (pid {os.getpid()}" in err


# --- restore: run ids, lock-file paths, verify before replace -----------------------------------------------


@pytest.mark.parametrize("run_id", ["../../etc", "/etc", "20240714T101010Z-abcdef/../..", "latest"])
def test_restore_refuses_run_ids_not_of_the_pipeline_s_format(tmp_path, capsys, run_id):
    code, _, err = cli(capsys, "restore", run_id, "predictions", "--set", f"paths.artifacts={tmp_path}")
    assert code == 2 and "is not a run id" in err and len(err.splitlines()) == 1


@pytest.mark.dvc
def test_restore_never_reads_outside_and_verifies_before_replacing(repo):
    from tests.test_versioning import version
    from utils.engine.versioning import DvcVersionStore, VersioningError, restore

    store = ArtifactStore(repo / "artifacts", TOY_SCHEMAS)
    versions = DvcVersionStore(repo, None)
    first = version(store, versions, repo, "20240713T060000Z-aaaaaa", 1)
    version(store, versions, repo, "20240714T060000Z-bbbbbb", 2)
    current = store.verify("summary")
    # a forged lock whose md5 is a path
    forged = yaml.safe_load((first / "dvc.lock").read_text())
    forged["stages"]["T_summary"]["outs"][0]["md5"] = "../../../../../../etc/passwd"
    (first / "dvc.lock").write_text(yaml.safe_dump(forged))
    with pytest.raises(VersioningError, match="md5 of 'artifacts/data/summary.json' is not 32 hex digits"):
        restore(store, versions, first, "summary")
    assert store.verify("summary") == current
    # a corrupted cache object: refused, and the current artifact is still the good one
    second = repo / "artifacts" / "runs" / "20240714T060000Z-bbbbbb"
    third = version(store, versions, repo, "20240715T060000Z-cccccc", 3)
    md5 = yaml.safe_load((second / "dvc.lock").read_text())["stages"]["T_summary"]["outs"][0]["md5"]
    obj = repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    obj.chmod(0o644)
    obj.write_bytes(b'{"total": 666}\n')
    good = store.verify("summary")
    with pytest.raises(VersioningError, match=f"no sound copy of md5 {md5} .*corrupted copies: {obj}"):
        restore(store, versions, second, "summary")
    assert store.verify("summary") == good and store.read_json("summary") == {"total": 3} and third.exists()


def test_restore_refuses_another_artifact_s_copy_that_a_forged_run_names(tmp_path):
    """A run folder's manifest (and dvc.lock) edited to name `numbers`' copy as `summary`'s: the copy
    matched the manifest's hash, so restore put it in place, sidecar and all. Its sidecar's name and
    contract are now checked too, before anything is replaced."""
    import hashlib

    from utils.engine.versioning import VersioningError, restore

    store = ArtifactStore(tmp_path, TOY_SCHEMAS)
    store.write_frame("numbers", pd.DataFrame({"n": [1, 2], "label": ["a", "b"]}))
    store.write_json("summary", {"total": 3})
    other = store.resolve_output_path("numbers").read_bytes(), store.meta_path("numbers").read_bytes()
    run_dir = tmp_path / "runs" / "20240714T060000Z-abcdef"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({"artifacts": {"summary": hashlib.sha256(other[0]).hexdigest()}}))

    class Forged:  # the version store hands back what the forged lock names: numbers' copy
        def fetch(self, run, relpath):
            return other[1] if relpath.endswith(".meta.json") else other[0]

    current = store.verify("summary")
    with pytest.raises(VersioningError, match="sidecar says it is 'numbers', not 'summary'; the current 'summary'"):
        restore(store, Forged(), run_dir, "summary")
    assert store.verify("summary") == current and store.read_json("summary") == {"total": 3}


def test_restore_names_a_failed_versioning_step_not_off(tmp_path):
    from utils.engine.versioning import DvcVersionStore, VersioningError

    run_dir = tmp_path / "runs" / "20240714T060000Z-abcdef"
    run_dir.mkdir(parents=True)
    status = {"run_id": run_dir.name, "executor": "legacy", "started_at": "2024-07-14T06:00:00Z",
              "steps": {"versioning": {"status": "failed", "error": "dvc commit --force: ERROR: disk full"}}}
    (run_dir / "phase_status.yaml").write_text(yaml.safe_dump(status))
    with pytest.raises(VersioningError, match=r"no dvc.lock was kept for this run \(versioning failed: dvc commit"):
        DvcVersionStore(tmp_path, None).fetch(run_dir, "artifacts/data/x.json")


# --- states the pipeline cannot leave -----------------------------------------------------------------------


def test_a_tampered_prediction_log_names_the_restore_that_mends_it(tmp_path):
    from utils.engine.one_stage import read_appended

    store = ArtifactStore(tmp_path, ROOT / "schemas")
    run_dir = tmp_path / "runs" / "20240713T060000Z-abcdef"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({"artifacts": {"prediction_log": "0" * 64}}))
    (run_dir / "dvc.lock").write_text("stages: {}\n")
    path = store.resolve_output_path("prediction_log")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet")
    store.meta_path("prediction_log").write_text(json.dumps({"sha256": "1" * 64}))
    with pytest.raises(ArtifactError, match=r"SHA-256 mismatch .*the stage appends to it, so restore the last "
                                            r"good copy: `python pipeline.py restore 20240713T060000Z-abcdef "
                                            r"prediction_log`"):
        read_appended(store, "prediction_log")


@pytest.mark.parametrize("sidecar", ["{}", "[]", '"x"', '{"sha256": 5}', "\xff"])
def test_a_sidecar_without_a_hash_is_a_mismatch_not_a_crash(tmp_path, sidecar):
    store = ArtifactStore(tmp_path, TOY_SCHEMAS)
    store.write_frame("numbers", pd.DataFrame({"n": [1], "label": ["a"]}))
    store.meta_path("numbers").write_text(sidecar)
    with pytest.raises(ArtifactError, match=r"numbers.parquet.meta.json: unreadable sidecar"):
        store.verify("numbers")
    assert not store.is_valid("numbers")


def test_a_corrupted_parse_cache_is_discarded_and_rebuilt(mirror, tmp_path, caplog):
    from utils.sources.seasons import parse_cached

    payload = (mirror / "gl2023.zip").read_bytes()
    first = parse_cached(payload, 2023, "gl2023.zip", {"NYA", "BOS"}, tmp_path)
    cached = next(tmp_path.glob("gl2023-*[0-9a-f].parquet"))
    cached.write_bytes(cached.read_bytes()[:100])  # truncated: 'Invalid or corrupted bit_width' on cab14e4
    logging.getLogger("mlb").propagate = True
    with caplog.at_level(logging.WARNING, logger="mlb.a_ingest"):
        again = parse_cached(payload, 2023, "gl2023.zip", {"NYA", "BOS"}, tmp_path)
    assert f"{cached}: discarding a cache entry that does not verify" in caplog.text
    pd.testing.assert_frame_equal(first.games, again.games)
    assert parse_cached(payload, 2023, "gl2023.zip", {"NYA", "BOS"}, tmp_path).games.equals(first.games)


# --- module A on broken game logs ---------------------------------------------------------------------------


def rezip(mirror, target, season, edit):
    from utils.sources.gamelogs import read_season_zip

    lines = read_season_zip((mirror / f"gl{season}.zip").read_bytes(), season, "x").splitlines()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"GL{season}.TXT", "\r\n".join(edit(lines)) + ("\r\n" if lines else ""))
    (target / f"gl{season}.zip").write_bytes(buffer.getvalue())


def ingest_cfg(tmp_path, source, first, as_of):
    return build_config({"paths": {"artifacts": str(tmp_path / "artifacts")},
                         "sources": {"retrosheet": {"base_url": str(source), "events_url": "off"},
                                     "schedule": {"mode": "replay"}},
                         "data": {"first_season": first}, "run": {"as_of": as_of}})


def test_one_malformed_line_is_quarantined_when_several_seasons_are_read(mirror, tmp_path):
    from modules import a_ingest
    from utils.store.artifacts import staged_writes

    source = tmp_path / "mirror"
    source.mkdir()
    (source / "gl2022.zip").symlink_to(mirror / "gl2022.zip")

    def huge_score(lines):
        fields = lines[9].split(",")
        fields[10] = "1" + "0" * 23  # 10^23: a TypeError traceback on cab14e4
        return lines[:9] + [",".join(fields)] + lines[10:]

    rezip(mirror, source, 2023, huge_score)
    with staged_writes() as staging:
        result = a_ingest.main(ingest_cfg(tmp_path, source, 2022, "2023-07-01"))
        staging.commit()
    store = ArtifactStore(tmp_path / "artifacts", ROOT / "schemas")
    quarantine = store.read_frame("quarantine")
    assert quarantine[["season", "line_number"]].values.tolist() == [[2023, 10]]
    assert quarantine["reason"].iloc[0] == (
        "home_score '100000000000000000000000' is not a whole number of at most 9 digits")
    assert quarantine["source"].iloc[0] == str(source / "gl2023.zip")
    assert result.metrics["quarantined"] == 1


def test_lines_the_contract_would_refuse_are_quarantined_and_module_a_goes_on(mirror, tmp_path):
    """A game number, day/night code or team code that raw_gamelogs' contract refuses failed module A,
    and with it the night, naming no file or line; a game a team plays against itself passed. Each is
    one quarantined line now, and the allowed values are the contract's own."""
    from modules import a_ingest
    from utils.sources.gamelogs import DAY_NIGHT, FIELD_NAMES, GAME_NUMBERS
    from utils.store.artifacts import staged_writes
    from utils.store.schema import load_contract

    rules = load_contract(ROOT / "schemas", "raw_gamelogs").body["items"]["properties"]
    assert list(GAME_NUMBERS) == rules["game_number"]["enum"]
    assert [v or None for v in DAY_NIGHT] == rules["day_night"]["enum"]
    source = tmp_path / "mirror"
    source.mkdir()
    wrong = {71: ("game_number", "7"), 72: ("day_night", "X"), 73: ("visiting_team", "at"), 74: ("visiting_team", None)}
    homes = {}

    def edit(lines):
        for number, (field, value) in wrong.items():
            fields = lines[number - 1].split(",")
            homes[number] = fields[FIELD_NAMES.index("home_team")].strip('"')
            fields[FIELD_NAMES.index(field)] = f'"{homes[number] if value is None else value}"'  # None: the home team
            lines[number - 1] = ",".join(fields)
        return lines

    rezip(mirror, source, 2023, edit)
    with staged_writes() as staging:
        result = a_ingest.main(ingest_cfg(tmp_path, source, 2023, "2023-07-01"))
        staging.commit()
    quarantine = ArtifactStore(tmp_path / "artifacts", ROOT / "schemas").read_frame("quarantine")
    assert quarantine[["line_number", "reason"]].values.tolist() == [
        [71, "game_number '7' is not one of 0, 1, 2, 3, A, B"], [72, "day_night 'X' is not D, N or empty"],
        [73, "visiting_team 'at' is not a three-character team code"],
        [74, f"visiting_team and home_team are both '{homes[74]}'"]]
    assert set(quarantine["source"]) == {str(source / "gl2023.zip")} and result.metrics["quarantined"] == 4


def test_the_quarantine_holds_no_line_about_a_game_on_or_after_the_day(mirror, tmp_path):
    """A run for day D saw the as-of season's malformed lines about later games in its quarantine (their
    text holds the result) and E counted them: a replay depended on lines written after its day. A line
    about an earlier game is kept, and so is one that names no day."""
    from modules import a_ingest
    from utils.store.artifacts import staged_writes

    source = tmp_path / "mirror"
    source.mkdir()
    numbers = {}

    def edit(lines):
        numbers["august"] = next(i for i, line in enumerate(lines) if line.startswith('"20230815"')) + 1
        numbers["last"] = len(lines) + 1  # the garbled line added at the end
        cut = lambda line: ",".join(line.split(",")[:150])  # noqa: E731
        return [cut(line) if i in (70, numbers["august"] - 1) else line for i, line in enumerate(lines)] + [
            '"2023xx01",garbled']

    rezip(mirror, source, 2023, edit)
    seen = {}
    for as_of in ("2023-08-15", "2023-08-16"):
        with staged_writes() as staging:
            result = a_ingest.main(ingest_cfg(tmp_path / as_of, source, 2023, as_of))
            staging.commit()
        quarantine = ArtifactStore(tmp_path / as_of / "artifacts", ROOT / "schemas").read_frame("quarantine")
        seen[as_of] = quarantine["line_number"].tolist()
        assert result.metrics["quarantined"] == len(quarantine)
    last = numbers["last"]
    assert seen == {"2023-08-15": [71, last], "2023-08-16": [71, numbers["august"], last]}


def test_each_kind_of_quarantined_line_is_dated_by_what_it_says():
    from utils.sources.quarantine import line_dates, quarantine_frame

    rows = [{"text": '"20240820","0","Tue","ATL"', "reason": "151 fields"},  # a game log's line
            {"text": "20240821,0,Wed,ATL", "reason": "151 fields"},  # unquoted
            {"text": "id,BOS202406260", "reason": "Chadwick warned on game BOS202406260"},  # an event file's game
            {"text": "", "reason": "game 745927 of 2024-06-26 does not read: HTTP 404"},  # a Stats API game
            {"text": '"2024xx01",garbled', "reason": "date '2024xx01' is not a 2024 date yyyymmdd"},
            {"text": '"20250615","0"', "reason": "date '20250615' is not a 2024 date yyyymmdd"}]  # mistyped
    frame = quarantine_frame([{"season": 2024, "source": "x", "line_number": n, **r} for n, r in enumerate(rows, 1)])
    assert [d.date().isoformat() if d == d else None for d in line_dates(frame)] == [
        "2024-08-20", "2024-08-21", "2024-06-26", "2024-06-26", None, None]


def test_skip_runs_a_whose_sources_are_outside_the_root_and_keeps_what_comes_out_the_same(
        mirror, tmp_path, capsys):
    """Under 'skip', A's outputs were kept as up to date after a game-log zip changed: nothing in the root
    vouches for the game logs, the play-by-play, Lahman or the Stats API. A runs every time; B, whose
    lineage is A's outputs' hashes, is kept when they come out the same bytes and rebuilt when not."""
    source = tmp_path / "mirror"
    source.mkdir()
    (source / "gl2023.zip").symlink_to(mirror / "gl2023.zip")
    root = tmp_path / "artifacts"
    args = ["run", "--legacy-executor", "--modules", "A,B", "--as-of", "2023-07-01", "--overwrite-policy", "skip",
            *[x for kv in (f"paths.artifacts={root}", f"sources.retrosheet.base_url={source}",
                           "sources.retrosheet.events_url=off", "data.first_season=2023", "versioning.backend=none")
              for x in ("--set", kv)]]

    def night():
        code, _, err = cli(capsys, *args)
        assert code == 0, err
        phases = load_status(root / STATUS_FILE).phases
        store = ArtifactStore(root, ROOT / "schemas")
        return {m: phases[m].status for m in "AB"}, store.meta("raw_gamelogs")["sha256"], store.meta("games")["sha256"]

    first = night()
    assert first[0] == {"A": "success", "B": "success"}
    again = night()
    assert again == ({"A": "success", "B": "skipped"}, first[1], first[2])  # A ran, came out the same: B kept
    (source / "gl2023.zip").unlink()

    def later_score(lines):  # an official scoring change in April
        fields = lines[5].split(",")
        fields[10] = str(int(fields[10]) + 1)
        return lines[:5] + [",".join(fields)] + lines[6:]

    rezip(mirror, source, 2023, later_score)
    changed = night()
    assert changed[0] == {"A": "success", "B": "success"} and changed[1] != first[1] and changed[2] != first[2]
    code, out, _ = cli(capsys, *args, "--dry-run")
    assert code == 0 and "it reads the game logs, the play-by-play, Lahman, the Stats API from outside" in out


def test_an_oversized_count_in_any_field_is_quarantined_naming_it(mirror):
    from utils.sources.gamelogs import FIELD_NAMES, parse_gamelog, read_season_zip

    lines = read_season_zip((mirror / "gl2024.zip").read_bytes(), 2024, "x").splitlines()[:3]
    fields = lines[1].split(",")
    fields[FIELD_NAMES.index("attendance")] = "9" * 25
    lines[1] = ",".join(fields)
    parsed = parse_gamelog("\n".join(lines), 2024, "gl2024.zip")
    assert parsed.games["line_number"].tolist() == [1, 3]
    assert parsed.quarantine["reason"].tolist() == [
        f"attendance is not a whole number of at most 9 digits: '{'9' * 25}'"]


def test_a_repeated_line_and_an_impossible_score_are_quarantined_naming_the_line(mirror):
    """A duplicated game-log line kept both copies and B failed on the duplicate game_id without naming
    a file; a visiting score of 999,999,999 reached the features. Each is now one quarantined line;
    a rare score (the logs' most, 49 in 1871) is kept."""
    from utils.sources.gamelogs import parse_gamelog, read_season_zip

    lines = read_season_zip((mirror / "gl2024.zip").read_bytes(), 2024, "x").splitlines()[:4]
    lines.insert(2, lines[0])  # line 3 repeats line 1
    absurd = lines[3].split(",")
    absurd[9] = "999999999"
    lines[3] = ",".join(absurd)
    parsed = parse_gamelog("\n".join(lines), 2024, "gl2024.zip")
    assert parsed.games["line_number"].tolist() == [1, 2, 5]
    assert parsed.quarantine[["line_number", "reason"]].values.tolist() == [
        [3, "repeats line 1 (the same date, home team and game number)"],
        [4, "visiting_score 999999999 is more runs than any team has scored in a game (60 at most)"]]
    oldest = read_season_zip((mirror / "gl1871.zip").read_bytes(), 1871, "x")
    assert parse_gamelog(oldest, 1871, "gl1871.zip").quarantine.empty  # 49 runs on 1871-06-28 is history


def test_an_empty_past_season_is_an_error_naming_the_file(mirror, tmp_path):
    from modules import a_ingest
    from utils.sources.gamelogs import IngestError

    source = tmp_path / "mirror"
    source.mkdir()
    (source / "gl2023.zip").symlink_to(mirror / "gl2023.zip")
    rezip(mirror, source, 2022, lambda lines: [])
    with pytest.raises(IngestError, match=rf"^{source / 'gl2022.zip'}: GL2022.TXT holds no readable game"):
        a_ingest.main(ingest_cfg(tmp_path, source, 2022, "2023-07-01"))


# --- one line, never a traceback: config, status file, disk ---------------------------------------------------


@pytest.mark.parametrize("content, message", [
    (b"\x00\x01\x02\xff\xfe binary", "not a UTF-8 text file"),
    ("run:\n  as_of: 2023-02-30\n".encode(), "run.as_of: "),
    ("sources:\n  schedule:\n    timezone: Mars/Olympus\n".encode(),
     "sources.schedule.timezone: Value error, 'Mars/Olympus' is not an IANA time zone"),
    (b"retention:\n  days: 99999999999\n", "retention.days: Input should be less than or equal to 36500"),
    (b"sources:\n  schedule:\n    statsapi_url: http://statsapi.mlb.com/api/v1/schedule\n",
     "must be an https:// URL (plain http only on 127.0.0.1)"),
    # YAML keeps a key's last value: the first run: section's policy was silently dropped
    (b"run:\n  overwrite_policy: fail\ndata:\n  first_season: 2000\nrun:\n  as_of: 2024-07-14\n",
     "config.yaml:5: not valid YAML (duplicate key 'run', first on line 1)"),
    (b"model:\n  seed: 1\n  seed: 2\n", "config.yaml:3: not valid YAML (duplicate key 'seed', first on line 2)"),
    (b"data:\n  franchise_map: {MON: WAS, 'MON': MIA}\n", "duplicate key 'MON', first on line 2"),  # quoted alike
])
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    code, _, err = cli(capsys, "validate-config", "--config", str(path))
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_a_folder_as_config_is_one_line(tmp_path, capsys):
    code, _, err = cli(capsys, "validate-config", "--config", str(tmp_path))
    assert code == 2 and err.strip() == f"config error: {tmp_path}: is a folder, not a config file"


@pytest.mark.parametrize("override, message", [
    ("model.seed=[1", "--set 'model.seed=[1': not a valid YAML value"),
    ("model.seed=!!python/object/apply:os.system ['true']",
     "not a valid YAML value (could not determine a constructor"),
    ("run.as_of=2023-02-30", "run.as_of: "),
    # validate-config said valid; B then failed games' contract (exit 1) on the mapped code
    ("data.franchise_map.MON=../x", "data.franchise_map.MON: String should match pattern '^[A-Z0-9]{3}$'"),
    ("data.neutral_parks=[tok01]", "data.neutral_parks.0: String should match pattern"),
])
def test_a_bad_set_is_one_line_and_exit_2(capsys, override, message):
    code, _, err = cli(capsys, "validate-config", "--set", override)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_an_impossible_date_names_its_key():
    with pytest.raises(ConfigError) as err:
        build_config({}, ["run.as_of=2023-02-30"])
    assert err.value.problems[0].startswith("run.as_of: Input should be a valid date")
    assert build_config({}, ["run.as_of=2024-02-29"]).run.as_of.isoformat() == "2024-02-29"


def test_plain_http_stats_api_only_on_loopback():
    assert build_config({}, ["sources.schedule.statsapi_url=http://127.0.0.1:8080/api/v1/schedule"])
    with pytest.raises(ConfigError, match="statsapi_url: .*must be an https"):
        build_config({}, ["sources.schedule.statsapi_url=http://10.0.0.1/api/v1/schedule"])
    assert load_config(ROOT / "config.yaml").sources.schedule.statsapi_url.startswith("https://")


@pytest.mark.parametrize("content", ["{{{ not yaml", "",
                                     "run_id: x\nexecutor: legacy\nstarted_at: 2024-07-14\nbogus: 1\n"])
def test_status_says_an_unreadable_status_file_is_unreadable_and_where(tmp_path, capsys, content):
    (tmp_path / STATUS_FILE).write_text(content)
    code, _, err = cli(capsys, "status", "--set", f"paths.artifacts={tmp_path}")
    assert code == 1 and err.strip().startswith(f"error: {tmp_path / STATUS_FILE}: unreadable phase status")
    assert len(err.splitlines()) == 1
    with pytest.raises(StatusError):
        load_status(tmp_path / STATUS_FILE)


@pytest.mark.parametrize("code_name", ["ENOSPC", "EROFS"])
def test_a_full_or_read_only_disk_under_the_lock_is_one_line(tmp_path, capsys, monkeypatch, code_name):
    import utils.store.locking

    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    real_open = os.open

    def refusing_open(path, flags, *args):
        if str(path).endswith(".run.lock") and flags & os.O_CREAT:
            raise OSError(getattr(errno, code_name), os.strerror(getattr(errno, code_name)), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(utils.store.locking.os, "open", refusing_open)
    code, _, err = cli(capsys, *toy_args(tmp_path))
    assert code == 1 and err.strip() == (
        f"error: {tmp_path / '.run.lock'}: cannot take the run lock ({os.strerror(getattr(errno, code_name))})")


def test_a_full_disk_while_writing_the_status_keeps_the_previous_status(tmp_path, capsys, monkeypatch):
    import phase_status

    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    code, _, _ = cli(capsys, *toy_args(tmp_path))
    assert code == 0
    before = (tmp_path / STATUS_FILE).read_text()

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(phase_status, "atomic_write_text", full)
    code, _, err = cli(capsys, *toy_args(tmp_path))
    assert code == 1 and err.strip().splitlines() == [
        f"error: {tmp_path / STATUS_FILE}: No space left on device; the previous status is unchanged"]
    assert (tmp_path / STATUS_FILE).read_text() == before
    assert not RunLock(tmp_path).is_held()
    assert len(list((tmp_path / "runs").iterdir())) == 1  # the refused run left no empty folder for `runs`


def test_a_run_refused_by_a_linked_status_file_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    """A run refused at its first status write (a link planted at .phase_status.yaml) left an empty
    runs/<id>/, which `runs` listed forever as unreadable."""
    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    victim = tmp_path / "victim.yaml"
    victim.write_text("untouched")
    root = tmp_path / "root"
    root.mkdir()
    (root / STATUS_FILE).symlink_to(victim)
    code, _, err = cli(capsys, *toy_args(root))
    assert code == 1 and str(root / STATUS_FILE) in err and victim.read_text() == "untouched"
    assert not (root / "runs").exists() or not list((root / "runs").iterdir())


def test_a_disk_that_fills_during_the_run_names_the_file_and_keeps_the_last_status(tmp_path, capsys, monkeypatch):
    """The run's first status write fits, a module's output does not, nor then the status: the error
    named no file ('[Errno 28] No space left on device') and the status stayed at the new run's start
    (a module 'pending', no end). Now the module's error names the file, and the last run's status
    comes back whole."""
    import phase_status
    import utils.store.artifacts

    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    assert cli(capsys, *toy_args(tmp_path))[0] == 0
    before = (tmp_path / STATUS_FILE).read_text()
    real_fsync, real_status_write = utils.store.artifacts.os.fsync, phase_status.atomic_write_text
    full = {"on": False}

    def fsync(fd):
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")  # as os.write says it: no file named
        return real_fsync(fd)

    def status_write(path, text):
        real_status_write(path, text)
        full["on"] = True  # the first status write of the run fits; the disk is full after it

    monkeypatch.setattr(utils.store.artifacts.os, "fsync", fsync)
    monkeypatch.setattr(phase_status, "atomic_write_text", status_write)
    code, _, err = cli(capsys, *toy_args(tmp_path))
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"error: {tmp_path}/") and lines[-1].endswith(  # the status, or the run's copy
        "phase_status.yaml: No space left on device; the previous status is unchanged"), lines
    assert (tmp_path / STATUS_FILE).read_text() == before
    assert not (tmp_path / (STATUS_FILE + ".previous")).exists() and not RunLock(tmp_path).is_held()


def test_a_missing_schemas_folder_is_bad_usage_like_a_missing_schema_file(tmp_path, capsys, monkeypatch):
    """Both are seen before any module runs: exit 2, naming the schema file looked for."""
    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    missing = tmp_path / "no-schemas"
    code, _, err = cli(capsys, "run", "--legacy-executor", "--set", f"paths.artifacts={tmp_path / 'root'}", "--set",
                       f"paths.schemas={missing}", "--set", "versioning.backend=none", "--as-of", "2024-07-14")
    assert code == 2 and err.strip().startswith(f"error: {missing}/") and "no schema file" in err
    assert not (tmp_path / "root" / STATUS_FILE).exists()


def test_a_status_path_that_is_a_folder_is_named_not_its_temporary_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    (tmp_path / STATUS_FILE).mkdir()
    code, _, err = cli(capsys, *toy_args(tmp_path))
    assert code == 1 and err.strip().splitlines()[-1].startswith(f"error: {tmp_path / STATUS_FILE}: Is a directory")
    assert ".tmp" not in err


def test_a_module_that_cannot_write_names_the_file(tmp_path, capsys, monkeypatch):
    import utils.store.artifacts

    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    real_fsync = utils.store.artifacts.os.fsync

    def fsync(fd):
        written = os.readlink(f"/proc/self/fd/{fd}")
        if "phase_status" not in written and "/runs/" not in written:  # an artifact, not the run's records
            raise OSError(errno.EFBIG, "File too large")  # as `ulimit -f` makes os.write say it
        return real_fsync(fd)

    monkeypatch.setattr(utils.store.artifacts.os, "fsync", fsync)
    code, _, err = cli(capsys, *toy_args(tmp_path))
    assert code == 1
    failed = [line for line in err.splitlines() if "failed:" in line]
    assert failed and f"[Errno 27] File too large: '{tmp_path}" in failed[0], err


# --- the run's result is the truth ----------------------------------------------------------------------------


def test_a_failed_metrics_push_fails_the_run_and_status_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    port = free_port()  # nobody listens there
    code, out, err = cli(capsys, *toy_args(tmp_path, "--set", f"monitoring.pushgateway_url=127.0.0.1:{port}"))
    assert code == 1 and f"error: metrics: 127.0.0.1:{port}: " in err
    run = read_status(tmp_path)
    assert run.modules_ok and run.steps["metrics"].status == "failed" and not run.ok
    assert run.steps["versioning"].status == "off"
    code, out, _ = cli(capsys, "status", "--set", f"paths.artifacts={tmp_path}")
    assert code == 0 and any(line.split()[:3] == ["-", "metrics", "failed"] for line in out.splitlines())


@pytest.mark.dvc
def test_a_failed_versioning_fails_the_run_with_dvc_s_reason(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".dvc").mkdir()  # a DVC folder without its config: `dvc commit` fails
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    code, _, err = cli(capsys, "run", "--legacy-executor", "--as-of", "2024-07-14", "--config",
                       str(ROOT / "config.yaml"),
                       "--set", "paths.artifacts=artifacts", "--set", f"paths.schemas={TOY_SCHEMAS}")
    assert code == 1 and "error: versioning: dvc commit --force: ERROR" in err
    run = read_status(tmp_path / "artifacts")
    assert run.modules_ok and run.steps["versioning"].status == "failed" and "ERROR" in run.steps["versioning"].error


def test_a_normal_night_is_quiet(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    for _ in range(2):  # the second night replaces every artifact of the first
        code, _, err = cli(capsys, *toy_args(tmp_path))
        assert code == 0
        lines = err.strip().splitlines()
        assert len(lines) == 4 and all(line.startswith("INFO mlb.runner: module ") for line in lines), err
    code, out, err = cli(capsys, *toy_args(tmp_path, "--dry-run"))
    assert code == 0 and err == "" and "note:" not in out and "[replace]" in out


def test_dry_run_calls_the_prediction_log_an_append(tmp_path):
    from modules.registry import REGISTRY
    from utils.engine.plan import Plan, describe_outputs

    store = ArtifactStore(tmp_path, ROOT / "schemas")
    for name in ("predictions", "prediction_log"):
        store.resolve_output_path(name).parent.mkdir(parents=True, exist_ok=True)
        store.resolve_output_path(name).write_bytes(b"x")
    effects = describe_outputs(REGISTRY, Plan(["L"], [["L"]]), store, "warn")
    assert effects["prediction_log"] == "append" and effects["predictions"] == "replace"
    assert effects["evaluation"] == "new"


def test_the_cron_entry_returns_the_pipeline_s_own_code(tmp_path):
    """README: cron calls .venv/bin/mlb-pipeline, not make (whose code is 2 for any failure)."""
    script = ROOT / ".venv" / "bin" / "mlb-pipeline"
    if not script.exists():
        pytest.skip("the console script exists once `make install` (or make run/test) has run")
    bad = subprocess.run([str(script), "validate-config", "--set", "run.max_workers=0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "run.max_workers" in bad.stderr
    (tmp_path / STATUS_FILE).write_text("{{{")
    broken = subprocess.run([str(script), "status", "--set", f"paths.artifacts={tmp_path}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1 and "unreadable phase status" in broken.stderr


# --- interrupts -----------------------------------------------------------------------------------------------


def start_sleepy_run(root, executor="--legacy-executor", prefect_api=None):
    """pipeline.py run in a real process whose D module sleeps a minute; returns once D is running."""
    import time

    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import pipeline; "
              f"from tests.toy_modules import toy_registry; pipeline.REGISTRY = toy_registry('sleepy'); "
              f"pipeline.main(sys.argv[1:])")
    args = toy_args(root)
    if executor != "--legacy-executor":
        args.remove("--legacy-executor")
        args += ["--set", f"run.prefect_api_url={prefect_api}"]
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if read_status(root, run_alive=True).phases["D"].status == "running":
                return proc
        except (AttributeError, KeyError, StatusError):  # not written yet, or D not yet recorded
            pass
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("module D never started")


@pytest.mark.parametrize("sig, code, executor", [
    ("SIGINT", 130, "--legacy-executor"),
    ("SIGTERM", 143, "--legacy-executor"),
    pytest.param("SIGTERM", 143, "prefect", marks=pytest.mark.prefect),
])
def test_a_signal_stops_the_run_promptly_and_records_where(tmp_path, sig, code, executor, request):
    import signal
    import time

    api = request.getfixturevalue("prefect_api") if executor == "prefect" else None
    proc = start_sleepy_run(tmp_path, executor, api)
    sent = time.monotonic()
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 10  # the module sleeps 60 s: the run did not wait for it
    assert proc.returncode == code
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: interrupted by {sig} during ") and "D (doubled)" in last
    assert last.endswith("recorded as interrupted")
    assert "Traceback" not in err
    run = read_status(tmp_path)
    states = {m: p.status for m, p in run.phases.items()}
    assert states["N"] == "success" and states["D"] == "interrupted" and states["T"] == "pending"
    assert run.interrupted == sig and run.finished_at is not None
    assert not RunLock(tmp_path).is_held()
    assert not ArtifactStore(tmp_path, TOY_SCHEMAS).resolve_output_path("doubled").exists()


def test_a_signal_that_lands_on_a_module_s_thread_still_stops_the_run_promptly(tmp_path):
    """Python runs a signal's handler on the main thread only when it wakes: the thread pool's main
    thread must not sleep until the running module ends (a flaky CI run once waited out a minute)."""
    import time

    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import pipeline; "
              f"from tests.toy_modules import toy_registry; "
              f"pipeline.REGISTRY = toy_registry('signalled_on_its_thread'); pipeline.main(sys.argv[1:])")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script, *toy_args(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert time.monotonic() - started < 30  # the module sleeps 60 s after the signal
    assert proc.returncode == 143, proc.stderr
    assert "error: interrupted by SIGTERM during D (doubled)" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_ctrl_c_while_a_reads_the_play_by_play_on_worker_processes_is_one_line_and_leaves_nothing(mirror, tmp_path):
    """A terminal's Ctrl-C goes to every process of the job: the workers printed KeyboardInterrupt
    tracebacks, the resource tracker KeyErrors, and named semaphores were left in /dev/shm."""
    import signal
    import time

    import psutil

    semaphores = set(glob.glob("/dev/shm/sem.mp-*"))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "pipeline.py"), "run", "--modules", "A", "--legacy-executor",
         "--as-of", "2024-07-14", "--set", f"sources.retrosheet.base_url={mirror}", "--set",
         f"paths.artifacts={tmp_path}", "--set", "versioning.backend=none"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})

    def workers():
        try:
            return [c for c in psutil.Process(proc.pid).children(recursive=True)
                    if "spawn_main" in " ".join(c.cmdline())]
        except psutil.Error:
            return []

    def deaf(worker) -> bool:  # started: its initializer has it ignore SIGINT (bit 1 of SigIgn)
        try:
            status = (Path("/proc") / str(worker.pid) / "status").read_text()
        except OSError:
            return False
        return bool(int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn")), 16) & 2)

    # the workers at work (a Ctrl-C in their first second, while they still import, is theirs to print)
    wait_for(lambda: len(workers()) >= 2 and all(deaf(w) for w in workers()), "the play-by-play's workers",
             seconds=120)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it: to the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == [err.strip().splitlines()[-1]], err  # one line, nothing else
    assert err.strip().startswith("error: interrupted by SIGINT during A (ingest)")
    time.sleep(1)  # the resource tracker ends once its parent has
    # none of the run's named semaphores is left; another test's pool may hold some a while, so what
    # appeared since the run began must go (a leaked one never does)
    wait_for(lambda: not (set(glob.glob("/dev/shm/sem.mp-*")) - semaphores), "the new semaphores to go", 180)
    assert not workers()


@pytest.mark.prefect
def test_a_network_error_is_the_same_one_line_under_prefect_and_the_thread_pool(mirror, tmp_path, prefect_api):
    from tests.conftest import run_pipeline

    port = free_port()  # nobody listens: the live schedule cannot be fetched
    lines = {}
    for executor in ("prefect", "legacy"):
        proc = run_pipeline("run", "--as-of", "2024-07-14", "--set", f"run.executor={executor}",
                            "--set", f"run.prefect_api_url={prefect_api}", "--set", "sources.retry.backoff_seconds=0",
                            "--set", f"sources.retrosheet.base_url={mirror}", "--set", "data.first_season=2024",
                            "--set", "sources.schedule.mode=live",
                            "--set", f"sources.schedule.statsapi_url=http://127.0.0.1:{port}/api/v1/schedule",
                            "--set", f"paths.artifacts={tmp_path / executor}", "--set", "versioning.backend=none")
        assert proc.returncode == 1
        lines[executor] = proc.stderr.strip().splitlines()
    url = f"http://127.0.0.1:{port}/api/v1/schedule"
    refused = f"{url}: ConnectionError: cannot connect (refused, or no network)"
    assert lines["prefect"] == lines["legacy"] == [  # asked again sources.retry.retries (3) times, then one error
        *(f"WARNING mlb.sources: {refused}; attempt {n} of 4, next in 0 s" for n in (1, 2, 3)),
        f"error: module A (ingest) failed: {refused} (after 4 attempts)"]


def test_the_viewer_passes_over_a_damaged_run_status(toy_cfg):
    from dashboards import viewer_data

    status, store = run_toy(toy_cfg, toy_registry())
    damaged = store.root / "runs" / "20000101T000000Z-abcdef"
    damaged.mkdir()
    (damaged / "phase_status.yaml").write_text("{{{")
    assert [r.run_id for r in viewer_data.run_history(store.root)] == [status.run_id]
    (store.root / STATUS_FILE).write_text("")
    with pytest.raises(StatusError, match=r"\.phase_status\.yaml: unreadable phase status \(empty\)"):
        viewer_data.latest_run(store.root)


# --- found by probing the pipeline as an attacker would (after the first round of fixes) ---------------------


def test_a_linked_backtest_folder_is_refused_and_nothing_lands_outside(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "backtest").symlink_to(outside)
    code, _, err = cli(capsys, "backtest", "--season", "2023", "--set", f"paths.artifacts={root}")
    assert code == 1 and "backtest: is a symbolic link inside the artifacts root" in err and len(err.splitlines()) == 1
    assert list(outside.iterdir()) == []


def test_a_status_file_that_expands_without_end_is_one_line_at_once(tmp_path, capsys):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefg", "bcdefgh"))
    (tmp_path / STATUS_FILE).write_text(bomb)
    code, _, err = cli(capsys, "status", "--set", f"paths.artifacts={tmp_path}")
    assert code == 1 and "unreadable phase status (aliases are not allowed" in err and len(err.splitlines()) == 1


def test_a_sidecar_or_artifact_that_is_a_folder_is_a_clear_artifact_error(tmp_path):
    store = ArtifactStore(tmp_path, TOY_SCHEMAS)
    store.write_frame("numbers", pd.DataFrame({"n": [1], "label": ["a"]}))
    store.meta_path("numbers").unlink()
    store.meta_path("numbers").mkdir()
    with pytest.raises(ArtifactError, match="unreadable sidecar"):
        store.verify("numbers")
    store.meta_path("numbers").rmdir()
    store.write_frame("numbers", pd.DataFrame({"n": [1], "label": ["a"]}))
    store.resolve_output_path("numbers").unlink()
    store.resolve_output_path("numbers").mkdir()
    with pytest.raises(ArtifactError, match=r"numbers.parquet: cannot read artifact 'numbers'"):
        store.read_frame("numbers")


def test_a_linked_metrics_folder_is_a_failed_step_not_a_running_one(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "REGISTRY", toy_registry())
    (tmp_path / "elsewhere").mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "metrics").symlink_to(tmp_path / "elsewhere")
    code, _, err = cli(capsys, *toy_args(root))
    assert code == 1 and "error: metrics: " in err and "is a symbolic link" in err
    run = read_status(root)
    assert run.steps["metrics"].status == "failed" and run.finished_at is not None
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("value", ["1.5", "1e23", "1e19", "inf", "9e18", "--5"])
def test_a_count_that_is_not_digits_is_quarantined(mirror, value):
    from utils.sources.gamelogs import FIELD_NAMES, parse_gamelog, read_season_zip

    lines = read_season_zip((mirror / "gl2024.zip").read_bytes(), 2024, "x").splitlines()[:3]
    fields = lines[1].split(",")
    fields[FIELD_NAMES.index("attendance")] = value
    lines[1] = ",".join(fields)
    parsed = parse_gamelog("\n".join(lines), 2024, "gl2024.zip")
    assert parsed.games["line_number"].tolist() == [1, 3]
    assert parsed.quarantine["reason"].tolist() == [f"attendance is not a whole number of at most 9 digits: '{value}'"]


def test_unreadable_zips_name_the_file(mirror):
    from utils.sources.gamelogs import IngestError, read_season_zip

    good = (mirror / "gl2023.zip").read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF  # inside the deflate stream: zlib.error on cab14e4's code path
    encrypted = bytearray(good)
    encrypted[good.rindex(b"PK\x01\x02") + 8] |= 0x01  # the central directory's "encrypted" flag
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("GL2023.TXT", "\n" * 70_000_000)
    for payload, reason in ((bytes(flipped), "corrupt or truncated zip"), (bytes(encrypted),
                                                                           "corrupt or truncated zip"),
                            (bomb.getvalue(), "unpacks to 70,000,000 bytes")):
        with pytest.raises(IngestError, match=rf"^gl2023.zip: .*{reason}"):
            read_season_zip(payload, 2023, "gl2023.zip")


@pytest.mark.parametrize("plant, reason", [
    ("fifo", "not a regular file"),  # blocked the night forever, holding the run lock
    ("device", "not a regular file"),  # a link to /dev/zero: read until memory ran out
    ("folder", "not a regular file"),
])
def test_a_local_source_that_is_not_a_regular_file_is_one_line_naming_it(tmp_path, plant, reason):
    from utils.sources.common import RetrosheetSource, SourceError

    path = tmp_path / "gl2023.zip"
    {"fifo": lambda: os.mkfifo(path), "device": lambda: path.symlink_to("/dev/zero"), "folder": path.mkdir}[plant]()
    source = RetrosheetSource(str(tmp_path), tmp_path / "cache")
    with pytest.raises(SourceError, match=rf"^{path}: {reason}$"):
        source.fetch_season(2023)


def test_the_as_of_season_s_file_that_cannot_be_read_is_an_error_not_unpublished(tmp_path):
    """Only a file that is not there is a season not published yet: a FIFO in the as-of season's place
    was taken for one (an INFO line), and the night went on without the season's game log."""
    from utils.sources.common import NotFound, RetrosheetSource, SourceError
    from utils.sources.seasons import fetch_published

    source = RetrosheetSource(str(tmp_path), tmp_path / "cache")
    assert fetch_published(source, 2024, 2024) is None  # not there: not published yet
    with pytest.raises(NotFound):
        fetch_published(source, 2023, 2024)  # a past season must be there
    os.mkfifo(tmp_path / "gl2024.zip")
    with pytest.raises(SourceError, match=rf"^{tmp_path / 'gl2024.zip'}: not a regular file$"):
        fetch_published(source, 2024, 2024)


def test_a_local_source_file_is_read_up_to_the_download_limit(tmp_path):
    from utils.sources.common import SourceError, read_local

    path = tmp_path / "gl2023.zip"
    path.write_bytes(b"x" * 101)
    assert read_local(path, 101) == b"x" * 101
    with pytest.raises(SourceError, match=rf"^{path}: 101 bytes, more than any source file \(100 at most\)$"):
        read_local(path, 100)
    (tmp_path / "link.zip").symlink_to(path)  # the tests' mirrors are links to the real zips
    assert read_local(tmp_path / "link.zip", 200) == b"x" * 101


@pytest.mark.parametrize("args, message", [
    (["run", "--modules", "A]", "--dry-run"], "--modules: unknown module id(s) A]"),
    (["validate-config", "--set", "model.seed=" + "[" * 3000], "nested too deeply"),
    (["validate-config", "--set", "model.seed=" + "9" * 5000], "not a valid YAML value"),
    (["backtest", "--season", "0"], "--season: '0' is not a season"),
    (["dag", "--format", "dot", "--out", "dag.dot"], "'--out': is for svg and png; dot prints to stdout"),  # ignored
    (["restore", "20240714T060000Z-abcdef", "nosuch"], "'nosuch' is not an artifact of this pipeline"),  # was 1
    (["restore", "20240714T060000Z-abcdef", "../../etc/passwd"], "'../../etc/passwd' is not an artifact"),
])
def test_odd_command_lines_are_one_line_and_exit_2(capsys, args, message):
    code, _, err = cli(capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_restore_names_a_broken_contract_not_an_unknown_artifact(tmp_path, capsys):
    import shutil

    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas)
    (schemas / "predictions.schema.json").write_text("{broken")
    code, _, err = cli(capsys, "restore", "20240714T060000Z-abcdef", "predictions", "--set",
                       f"paths.artifacts={tmp_path / 'artifacts'}", "--set", f"paths.schemas={schemas}")
    assert code == 1 and f"{schemas / 'predictions.schema.json'}:1: not valid JSON" in err, err


def test_a_fifo_planted_as_the_lock_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / ".run.lock")
    with pytest.raises(LockError, match=r"\.run\.lock: cannot take the run lock \(not a regular file\)"):
        RunLock(tmp_path).acquire()
    assert not RunLock(tmp_path).is_held() and RunLock(tmp_path).holder() is None


@pytest.mark.parametrize("body, message", [
    ('{"title": "numbers", "schema_version": "1", "x-artifact-kind": "table", "type": 5}', "not a valid JSON Schema"),
    ("[1, 2]", "a schema is a JSON object, not list"),
    (b"\xff\xfe", "unreadable schema"),
])
def test_a_damaged_schema_names_its_file(tmp_path, body, message):
    from utils.store.schema import SchemaError, load_contract

    path = tmp_path / "numbers.schema.json"
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    with pytest.raises(SchemaError, match=rf"numbers.schema.json: {message}"):
        load_contract(tmp_path, "numbers")


def test_retrosheet_s_minus_one_for_an_unknown_count_is_kept(mirror):
    """Retrosheet writes attendance -1 for 2021-07-21 SDN at ATL (game 2): a real game, not a broken line."""
    from utils.sources.gamelogs import parse_gamelog, read_season_zip

    parsed = parse_gamelog(read_season_zip((mirror / "gl2021.zip").read_bytes(), 2021, "gl2021.zip"), 2021,
                           "gl2021.zip")
    assert parsed.quarantine.empty
    game = parsed.games[parsed.games["line_number"] == 1423]
    assert game["attendance"].tolist() == [-1] and game["home_team"].tolist() == ["ATL"]


# --- found by reviewing the change ---------------------------------------------------------------------------


def test_a_folder_planted_at_an_output_fails_the_stage_before_any_rename(toy_cfg):
    _, store = run_toy(toy_cfg, pair_registry())
    before = store.verify("doubled")
    store.resolve_output_path("squared").unlink()
    store.resolve_output_path("squared").mkdir()  # the second output's target is now a folder
    status, _ = run_toy(toy_cfg, pair_registry())
    assert status.phases["P"].status == "failed" and "is a folder or a link" in status.phases["P"].error
    assert store.verify("doubled") == before  # the first output was not replaced either
    assert list((store.root / "data").glob(".*tmp")) == []


def test_a_registry_listing_a_stage_before_its_producer_is_refused():
    from utils.engine.stages import ModuleSpec, Registry

    with pytest.raises(ValueError, match="stage B reads x, made by A, which is registered after it"):
        Registry([ModuleSpec("B", "b", "m:f", ("x",), ("y",)), ModuleSpec("A", "a", "m:f", (), ("x",))])


def test_a_stage_s_code_version_covers_the_project_modules_it_imports():
    from modules.registry import REGISTRY
    from utils.engine.stages import _project_sources

    names = [p.name for p in _project_sources(REGISTRY["L"].module)]
    assert {"l_predict_monitor.py", "models.py", "evaluation.py"} <= set(names)
    assert REGISTRY["L"].code_version() != REGISTRY["K"].code_version()
