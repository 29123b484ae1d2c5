"""Downloads (ugach_core.data.download) against a local loopback HTTP server: never the
internet.  The server supports ``Range`` requests, and can ignore them, cut a transfer short,
or answer 404."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from ugach_core.data import download as dl
from ugach_core.data.download import DownloadError, Remote, download

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class Server:
    """A loopback server for ``/data.bin`` with switches for the failure modes."""

    def __init__(self) -> None:
        self.ranges: list[str | None] = []
        self.cut_after: int | None = None   # send this many bytes, then drop the connection
        self.honour_range = True
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                if self.path != "/data.bin":
                    self.send_error(404, "Not Found")
                    return
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                start = 0
                if rng and outer.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(PAYLOAD):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                else:
                    self.send_response(200)
                body = PAYLOAD[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None:
                    self.wfile.write(body[: outer.cut_after])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    outer.cut_after = None
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def remote(server: Server, md5: str | None = MD5, size: int | None = len(PAYLOAD),
           path: str = "/data.bin") -> Remote:
    return Remote("data.bin", server.url + path, size, md5)


def test_download_and_verify(server, tmp_path):
    p = download(remote(server), tmp_path, progress=False)
    assert p == tmp_path / "data.bin" and p.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    assert server.ranges == [None]
    # a second call finds the verified file and fetches nothing
    assert download(remote(server), tmp_path, progress=False) == p
    assert server.ranges == [None]


def test_interrupted_download_resumes_with_range(server, tmp_path):
    server.cut_after = 100_000
    with pytest.raises(DownloadError, match=r"broke off .* kept in .*data.bin.part; run again"):
        download(remote(server), tmp_path, progress=False, block=4096)
    part = tmp_path / "data.bin.part"
    assert part.stat().st_size == 100_000 and not (tmp_path / "data.bin").exists()
    p = download(remote(server), tmp_path, progress=False)
    assert server.ranges == [None, "bytes=100000-"]
    assert p.read_bytes() == PAYLOAD and not part.exists()


def test_server_without_range_support_starts_over(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:5000])
    server.honour_range = False
    p = download(remote(server), tmp_path, progress=False)
    assert server.ranges == ["bytes=5000-"] and p.read_bytes() == PAYLOAD


def test_complete_part_file_is_checked_not_refetched(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    assert download(remote(server), tmp_path, progress=False).read_bytes() == PAYLOAD
    assert server.ranges == []


def test_checksum_mismatch_keeps_everything(server, tmp_path):
    wrong = "0" * 32
    with pytest.raises(DownloadError, match=rf"md5 is {MD5}, expected {wrong}.*kept as .*"
                                            r"data.bin.bad"):
        download(remote(server, md5=wrong), tmp_path, progress=False)
    assert (tmp_path / "data.bin.bad").read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin").exists()
    # a file the user already has under that name is never replaced or deleted
    mine = tmp_path / "data.bin"
    mine.write_bytes(b"the user's own file")
    with pytest.raises(DownloadError, match=r"already exists but it has 19 bytes.*left untouched"):
        download(remote(server), tmp_path, progress=False)
    with pytest.raises(DownloadError, match=r"already exists but its md5 is .*left untouched"):
        download(remote(server, size=None), tmp_path, progress=False)
    assert mine.read_bytes() == b"the user's own file"
    assert server.ranges == [None]


def test_no_network_says_which_files_go_where(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens on this port
    r = Remote("big.zip", f"http://127.0.0.1:{port}/big.zip", 1234, "ab" * 16)
    with pytest.raises(DownloadError, match="could not download: http://127.0.0.1") as e:
        download(r, tmp_path / "sub", progress=False, timeout=5)
    msg = str(e.value)
    assert "could not download" in msg and f"Put these files in {tmp_path / 'sub'}" in msg
    assert f"big.zip (1,234 bytes, md5 {'ab' * 16}) from {r.url}" in msg
    assert not list((tmp_path / "sub").iterdir())


def test_download_all_offline_lists_every_missing_file(tmp_path, monkeypatch):
    """With no network the message once listed only the first file of the set."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    remotes = [Remote(n, f"http://127.0.0.1:{port}/{n}", 10, None) for n in ("a", "b", "c")]
    monkeypatch.setitem(dl.REMOTES, "toy", remotes)
    (tmp_path / "b").write_bytes(b"0123456789")  # already there: not listed
    with pytest.raises(DownloadError, match=r"could not download: http://127.0.0.1") as e:
        dl.download_all("toy", tmp_path, progress=False, timeout=5)
    listed = [ln.split()[1] for ln in str(e.value).splitlines() if ln.startswith("  - ")]
    assert listed == ["a", "c"]


def test_http_error_is_reported(server, tmp_path):
    with pytest.raises(DownloadError, match=r"(?s)answered HTTP 404.*Put these files in"):
        download(remote(server, path="/missing.bin"), tmp_path, progress=False)


def test_registry_holds_the_official_files():
    """URLs, sizes and md5 of the MIRFlickr-25K release, as recorded in the project spec."""
    r = {x.name: x for x in dl.REMOTES["mirflickr25k"]}
    img, ann = r["mirflickr25k.zip"], r["mirflickr25k_annotations_v080.zip"]
    assert img.url == "https://press.liacs.nl/mirflickr/mirflickr25k.v3b/mirflickr25k.zip"
    assert img.size == 3_069_184_257 and img.md5 == "a23d0a8564ee84cda5622a6c2f947785"
    assert ann.url.endswith("/mirflickr25k.v3b/mirflickr25k_annotations_v080.zip")
    assert ann.size == 207_220 and ann.md5 == "aa0138c79892b1b670184d142380948f"
    with pytest.raises(ValueError, match="no downloads registered for 'nuswide'"):
        dl.download_all("nuswide", Path("."))


def test_download_all_refuses_when_the_disk_is_too_small(tmp_path, monkeypatch):
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000}))
    with pytest.raises(DownloadError, match=r"needs 3,069,391,477 bytes .* only 1,000 are free"):
        dl.download_all("mirflickr25k", tmp_path / "m")


def test_wikipedia_registry_matches_the_real_files(wiki_root):
    """Sizes and md5 in the registry are those of the real release files."""
    for r in dl.REMOTES["wikipedia"]:
        assert r.url.startswith("https://raw.githubusercontent.com/emanuetre/crossmodal/")
        f = wiki_root / r.name
        assert f.stat().st_size == r.size and dl.md5sum(f) == r.md5


def test_prepare_wikipedia_downloads_checks_and_loads(wiki_root, tmp_path, monkeypatch, capsys):
    """`data prepare wikipedia --download` from a loopback copy of the release: the files land in
    ROOT/wikipedia, pass their md5 check and load; without --download it says what to put where."""
    import functools

    from ugach_core.cli import main
    from ugach_core.data import load

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(wiki_root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        monkeypatch.setitem(dl.REMOTES, "wikipedia", [
            Remote(r.name, f"{url}/{r.name}", r.size, r.md5) for r in dl.REMOTES["wikipedia"]])
        root = tmp_path / "root"
        assert main(["data", "prepare", "wikipedia", "--root", str(root)]) == 2
        err = capsys.readouterr().err
        assert "raw_features.mat (1,075,232 bytes" in err and "--download" in err
        assert not root.exists() or not any(root.rglob("*.mat"))
        assert main(["data", "prepare", "wikipedia", "--root", str(root), "--download",
                     "--no-progress"]) == 0
        assert "2866" in capsys.readouterr().out.replace(",", "")
        data = load("wikipedia", root=root)
        assert len(data.labels) == 2866
        # a second run finds the files and downloads nothing
        n_files = sorted(p.name for p in (root / "wikipedia").iterdir())
        assert main(["data", "prepare", "wikipedia", "--root", str(root), "--download",
                     "--no-progress"]) == 0
        assert sorted(p.name for p in (root / "wikipedia").iterdir()) == n_files
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_server_file_of_another_size_is_reported_not_resumed_forever(server, tmp_path):
    """A complete response whose size differs from the registry is a mismatch (kept as .bad,
    the sizes named), not a broken transfer to resume again and again."""
    r = remote(server, size=len(PAYLOAD) + 100)
    with pytest.raises(DownloadError, match=r"has 300,000 bytes, expected 300,100"):
        download(r, tmp_path, progress=False)
    assert (tmp_path / "data.bin.bad").read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()
