"""utils.sources.http_get against misbehaving servers on 127.0.0.1: a body past the size cap, a
server that drips a byte at a time, redirects to another host or scheme."""
from __future__ import annotations

import http.server
import time

import pytest

from tests import local_server
from utils.sources.common import SourceError, http_get


class Misbehaving(http.server.BaseHTTPRequestHandler):
    """/endless: bytes without end; /drip: a byte every 0.3 s; /away: a redirect to `Misbehaving.elsewhere`;
    /here: a redirect to /ok on this server; /ok: a short body."""
    elsewhere = ""
    seen: list[str] = []
    agents: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).seen.append(self.path)
        type(self).agents.append(self.headers.get("User-Agent", ""))
        if self.path == "/busy":
            self.send_response(429)
            self.send_header("Retry-After", "7")
            self.end_headers()
            return
        if self.path in ("/away", "/here"):
            self.send_response(302)
            self.send_header("Location", type(self).elsewhere if self.path == "/away" else "/ok")
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        try:
            if self.path == "/endless":
                block = b"x" * 65536
                for _ in range(100_000):  # 6.5 GB at most, far past any cap: the client must stop first
                    self.wfile.write(block)
            elif self.path == "/drip":
                for _ in range(200):  # a minute at most
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.3)
            else:
                self.wfile.write(b"fine")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Misbehaving.seen = []
    with local_server.serving(Misbehaving) as one, local_server.serving(Misbehaving) as two:
        yield [f"http://127.0.0.1:{s.server_address[1]}" for s in (one, two)]


def test_a_huge_answer_is_cut_off_at_the_cap_not_read_whole(server):
    start = time.monotonic()
    with pytest.raises(SourceError, match=r"/endless: an answer of more than 2,000,000 bytes \(2,000,000 at most\)"):
        http_get(f"{server[0]}/endless", None, 30, 2_000_000)
    assert time.monotonic() - start < 10


def test_the_timeout_bounds_the_whole_request_not_each_read(server):
    """One byte every 0.3 s never trips a per-read timeout of 1 s; the request's own deadline does."""
    start = time.monotonic()
    with pytest.raises(SourceError, match=r"/drip: no complete answer within 1s") as err:
        http_get(f"{server[0]}/drip", None, 1)
    assert time.monotonic() - start < 3 and err.value.transient


def test_a_redirect_is_followed_only_to_the_same_scheme_and_host(server):
    here, other = server
    assert http_get(f"{here}/here", None, 5) == b"fine"
    Misbehaving.elsewhere, Misbehaving.seen = f"{other}/ok", []
    with pytest.raises(SourceError, match=rf"^{here}/away: redirected to {other}/ok, another host or scheme; "
                                          r"not followed$"):
        http_get(f"{here}/away", None, 5)
    assert Misbehaving.seen == ["/away"]  # the other server was never asked
    Misbehaving.elsewhere = "https://127.0.0.1/ok"
    with pytest.raises(SourceError, match="another host or scheme"):
        http_get(f"{here}/away", None, 5)


def test_retries_wait_as_the_server_asks_with_jitter_and_say_who_asks(server):
    from utils.sources.common import with_retries

    waits = []
    fetch = with_retries(http_get, retries=2, backoff_seconds=2.0, sleep=waits.append, jitter=lambda: 1.0)
    with pytest.raises(SourceError, match=r"/busy: HTTP 429 \(after 3 attempts\)$"):
        fetch(f"{server[0]}/busy", None, 5)
    assert waits == [7.0, 7.0]  # Retry-After: 7 outlasts 2 s and 4 s, even stretched by a quarter (2.5, 5)
    waits.clear()
    fetch = with_retries(lambda *a: (_ for _ in ()).throw(SourceError("x", transient=True)), retries=2,
                         backoff_seconds=2.0, sleep=waits.append, jitter=lambda: 1.0)
    with pytest.raises(SourceError):
        fetch("u", None, 5)
    assert waits == [2.5, 5.0]  # the backoff, stretched by the jitter's most (a quarter)
    assert Misbehaving.agents and all(a.startswith("mlb-pipeline/") for a in Misbehaving.agents)
