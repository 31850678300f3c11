"""Chadwick's per-game player lines (`cwdaily`) without the fielding the pipeline does not keep.

chadwickpy's `tools.daily.game_lines` replays each game twice: inside `box.box_create`, whose
`iterate_game` credits all nine fielders on every play, and then once more to run an iterator to the
end that its fields read only the game of. The player_games lines keep batting and pitching only.
`game_lines` here is that function without the second replay (the iterator is still made before
the box score: a resumed game's `suspended` comment is read by the first iterator to reach it), and
`box_create` is chadwickpy's own `box_create` and `iterate_game` (chadwickpy 0.4.0, `box.py`, a
derivative of Chadwick's `box.c`: Copyright (c) 2002-2026 Dr T L Turocy and the Chadwick Baseball
Bureau, GPL-2.0-or-later) with the fielding credits left out. The check that every position has a
fielder (and the others `fielder_stats` makes) stays and logs or raises as chadwickpy does, so a game
chadwickpy would quarantine is quarantined still; with another chadwickpy than 0.4.0 its own
`game_lines` is used. tests/test_events.py holds the lines to chadwickpy's own `game_lines`, byte for
byte; every season 2000-2024 parses to the same bytes, in about a third less time.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import version

from chadwickpy import box as cw
from chadwickpy.parse import runs_on_play
from chadwickpy.tools import daily
from chadwickpy.tools.daily import FIELDS, cut_at_nul

log = logging.getLogger("chadwickpy")  # chadwickpy's logger: its messages are the quarantine's reasons
COPIED_FROM = "0.4.0"  # the chadwickpy whose box.py these functions follow (requirements.lock pins it)
_COPIED_FROM_THIS_VERSION = version("chadwickpy") == COPIED_FROM


def game_lines(game, fields: tuple[int, ...]) -> Iterator[str]:
    """`chadwickpy.tools.daily.game_lines(game, fields=fields)`, ASCII: one replay, no fielding credits
    (another chadwickpy than the one these functions were copied from: its own game_lines)."""
    if not _COPIED_FROM_THIS_VERSION:
        yield from daily.game_lines(game, fields=fields)
        return
    at = cw.GameIter(game)  # made before the box score, as chadwickpy makes it: the order is not idle
    box = box_create(game)
    for team in (0, 1):
        for slot in range(1, 11):
            player = cw.get_starter(box, team, slot % 10)
            seq = 1
            while player is not None:
                yield cut_at_nul(",".join(FIELDS[i][0](True, at, box, team, slot, seq, player) for i in fields))
                player = player.next
                seq += 1


def box_create(game) -> cw.Boxscore:
    """`chadwickpy.box.box_create` without fielding credits."""
    box = cw.Boxscore()
    cw.enter_starters(box, game)
    if game.events:
        _iterate_game(box, game)
    else:
        cw.process_boxscore_file(box, game)
    for t in (0, 1):
        last = box.pitchers[t]
        if last is None:
            continue
        if last.prev is None:
            last.pitching.cg = 1
            if last.pitching.r == 0:
                last.pitching.sho = 1
        else:
            last.pitching.gf = 1
    for key, credit in (("wp", "w"), ("lp", "l"), ("save", "sv")):
        pitcher_id = game.info_lookup(key)
        pitcher = cw.find_pitcher(box, pitcher_id) if pitcher_id is not None else None
        if pitcher is not None:
            setattr(pitcher.pitching, credit, 1)
    gwrbi = game.info_lookup("gwrbi")
    if gwrbi is not None:
        batter = cw.find_player(box, gwrbi, True)
        if batter is not None:
            batter.batting.gw = 1
    return box


def _fielders_known(box: cw.Boxscore, gi) -> None:
    """chadwickpy's `fielder_stats` without its credits: what it checks, in its order, with its own message
    or error (a position without a fielder; a passed ball with no pitcher charged; a double or triple
    play's fielder not in the game), so a game it would quarantine is quarantined for the same reason."""
    d, state = gi.data, gi.state
    bt = state.batting_team
    for pos in range(1, 10):
        player = cw.find_current_player(box, state.fielders[pos][1 - bt], False)
        if player is None or player.fielding[pos] is None:
            log.error("ERROR: In %s, no entry for fielder at position %d at event %d.", gi.game.game_id, pos,
                      state.event_count)
            cw._log_play(gi)
            return
        if pos == 2 and d.pb_flag:
            cw._deref(cw.find_pitcher(box, state.charged_pitcher(d)))
    if d.dp_flag or d.tp_flag:
        for i in range(d.num_touches):
            cw._deref(cw.find_current_player(box, state.fielders[d.touches[i]][1 - bt], False))


def _iterate_game(box: cw.Boxscore, game) -> None:
    """`chadwickpy.box.iterate_game` with `fielder_stats` reduced to its check."""
    lead_change = 0
    gi = cw.GameIter(game)
    while gi.event is not None:
        state = gi.state
        bt = state.batting_team
        row = box._inning_row(state.inning)
        if row[bt] < 0:
            row[bt] = 0
        cw.pitch_stats(box, gi)
        if gi.event.event_text != "NP":
            cw.batter_stats(box, gi)
            cw.runner_stats(box, gi)
            _fielders_known(box, gi)
            if gi.data.dp_flag:
                box.dp[1 - bt] += 1
            if gi.data.tp_flag:
                box.tp[1 - bt] += 1
            row[bt] += runs_on_play(gi.data)
            if (state.score[bt] + runs_on_play(gi.data) > state.score[1 - bt]
                    and state.score[bt] - state.score[1 - bt] <= 0):
                lead_change = 1
            else:
                lead_change = 0
        cw.add_substitute(box, gi)
        gi.next()
    state = gi.state
    box.outs_at_end = state.outs
    box.walk_off = lead_change
    for t in (0, 1):
        box.lob[t] = state.num_batters[t] + state.num_auto_runners[t] - state.times_out[t] - state.score[t]
        box.score[t] = state.score[t]
        box.hits[t] = state.hits[t]
        box.errors[t] = state.errors[t]
