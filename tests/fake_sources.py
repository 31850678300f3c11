"""In-memory sources for A (utils/sources/adapters.py): no folder, no server, no network. A test hands
`ingest_from` a `Sources` of these and checks what A makes of exactly the bytes it gave."""
from __future__ import annotations

import io
import zipfile

from utils.sources.common import NotFound


def zipped(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class InMemorySeasons:
    """A `SeasonFiles` of season -> file bytes; `asked` records each season asked for, in order."""

    def __init__(self, files: dict[int, bytes], what: str = "game log", name: str = "gl{season}.zip"):
        self.files, self.what, self.name = files, what, name
        self.asked: list[int] = []

    def fetch_season(self, season: int) -> tuple[bytes, str]:
        self.asked.append(season)
        where = f"memory:{self.name.format(season=season)}"
        if season not in self.files:
            raise NotFound(f"{where}: no {self.what} for {season}")
        return self.files[season], where
