"""Downloads of the official releases: resumable (HTTP ``Range`` into a ``.part`` file),
with a progress bar and an md5 check.  Nothing the user already had is ever deleted.

The registry :data:`REMOTES` holds each data set's files (URL, size, md5 where known).
Sizes and md5 of the MIRFlickr archives are those of the collection's download page (the
md5 of the image archive is printed there; the other values come from a third-party
download script).  README: "Data sets from the official releases".
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm


@dataclass(frozen=True)
class Remote:
    """One downloadable file: where it comes from and what it must be."""

    name: str
    url: str
    size: int | None = None
    md5: str | None = None
    note: str = ""

    def describe(self) -> str:
        size = f"{self.size:,} bytes" if self.size else "size unknown"
        md5 = f"md5 {self.md5}" if self.md5 else "no published checksum"
        return f"{self.name} ({size}, {md5}) from {self.url}"


_WIKI_BASE = ("https://raw.githubusercontent.com/emanuetre/crossmodal/"
              "40db7f5338a150ef8feff2787f4bb8b3df809355/wikipedia_info")

REMOTES: dict[str, list[Remote]] = {
    "mirflickr25k": [
        Remote("mirflickr25k.zip",
               "https://press.liacs.nl/mirflickr/mirflickr25k.v3b/mirflickr25k.zip",
               3069184257, "a23d0a8564ee84cda5622a6c2f947785"),
        Remote("mirflickr25k_annotations_v080.zip",
               "https://press.liacs.nl/mirflickr/mirflickr25k.v3b/"
               "mirflickr25k_annotations_v080.zip",
               207220, "aa0138c79892b1b670184d142380948f"),
    ],
    # The SVCL release files as redistributed, unmodified, in a public repository, pinned to a
    # commit; sizes and md5 are those of the files this project tests against.
    "wikipedia": [
        Remote(name, f"{_WIKI_BASE}/{name}", size, md5) for name, size, md5 in (
            ("raw_features.mat", 1075232, "50a6880f35921ae0fd5be2a6bf21c8c6"),
            ("trainset_txt_img_cat.list", 155153, "62d7b815e995fcf9d5f2581540196b88"),
            ("testset_txt_img_cat.list", 49494, "c8f97c593505796cdf1b6fe1a8d42631"),
            ("categories.list", 75, "de5c3ae255ce565357d0b855dd1ee8d6"),
        )
    ],
    # The CUB-10 file of the multi-view learning papers, from the ProImp (IJCAI 2023)
    # repository pinned to a commit; size and md5 are those of the file this project tests
    # against.  No licence is stated for the data: it is fetched, never redistributed here.
    "cub10": [
        Remote("cub_googlenet_doc2vec_c10.mat",
               "https://raw.githubusercontent.com/XLearning-SCU/2023-IJCAI-ProImp/"
               "7f993ecc3e3ca29aa2d7d6a6c3bea0bac0e932c1/data/cub_googlenet_doc2vec_c10.mat",
               3182590, "5a19dd40bf61ef6ece08114f10560408"),
    ],
}


class DownloadError(RuntimeError):
    """A download that could not be completed (network, server, or checksum); ``reason``:
    why the server could not be reached, when that was the cause."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def offline_message(remotes: list[Remote], folder: Path, reason: str | None = None) -> str:
    """Which files to put where (after ``reason``, why the download failed, when given)."""
    lines = [] if reason is None else [f"could not download: {reason}.", "Without network "
                                       "access, fetch these files on another machine."]
    lines += [f"Put these files in {folder}:"]
    lines += [f"  - {r.describe()}" for r in remotes]
    return "\n".join(lines)


def _check(path: Path, r: Remote) -> str | None:
    """``None`` when ``path`` matches ``r``'s size and md5, else what differs."""
    size = path.stat().st_size
    if r.size is not None and size != r.size:
        return f"it has {size:,} bytes, expected {r.size:,}"
    if r.md5 is not None:
        got = md5sum(path)
        if got != r.md5.lower():
            return f"its md5 is {got}, expected {r.md5}"
    return None


def download(r: Remote, folder: str | os.PathLike, progress: bool = True, timeout: float = 60,
             block: int = 1 << 20) -> Path:
    """Fetch ``r`` into ``folder/r.name`` and return that path.

    * an existing ``folder/r.name`` that matches size and md5 is kept (nothing downloaded);
      one that does not is **left untouched** and ``DownloadError`` says so;
    * bytes go to ``folder/r.name.part``; a later call resumes it with an HTTP ``Range``
      request (starting over if the server ignores ranges);
    * when complete, size and md5 are checked; on a mismatch the download is kept as
      ``r.name.bad`` (for inspection) and ``DownloadError`` says what happened;
    * network failures raise ``DownloadError`` with :func:`offline_message`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dest, part = folder / r.name, folder / f"{r.name}.part"
    if dest.exists():
        bad = _check(dest, r)
        if bad is None:
            return dest
        raise DownloadError(
            f"{dest} already exists but {bad}. It was left untouched; move or delete it "
            f"yourself and run again to download {r.url}")
    have = part.stat().st_size if part.exists() else 0
    if r.size is not None and have > r.size:
        part.unlink()  # our own partial file, longer than the real one: start over
        have = 0
    server_done = False  # the server sent all it has (its size may still differ from r.size)
    if r.size is None or have < r.size:
        req = urllib.request.Request(r.url, headers={"User-Agent": "ugach_core"})
        if have:
            req.add_header("Range", f"bytes={have}-")
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing left to fetch
                resp, server_done = None, True
            else:
                why = f"{r.url} answered HTTP {e.code} {e.reason}"
                raise DownloadError(offline_message([r], folder, why), why) from e
        except (urllib.error.URLError, socket.timeout, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            why = f"{r.url}: {reason}"
            raise DownloadError(offline_message([r], folder, why), why) from e
        if resp is not None:
            with resp:
                resumed = have and resp.status == 206
                if not resumed:
                    have = 0
                length = resp.headers.get("Content-Length")
                total = r.size or ((have + int(length)) if length else None)
                with open(part, "ab" if resumed else "wb") as fh, tqdm(
                        total=total, initial=have, unit="B", unit_scale=True, desc=r.name,
                        disable=not progress) as bar:
                    err: Exception | None = None
                    try:
                        while chunk := resp.read(block):
                            fh.write(chunk)
                            bar.update(len(chunk))
                    except (socket.timeout, OSError, http.client.HTTPException) as e:
                        err = e
                    got = fh.tell()
                    # short: fewer bytes than the server announced (a broken transfer, which
                    # a later call resumes); a complete response of the wrong size is not
                    # short: the size check below reports it
                    sent = (have + int(length)) if length else total
                    short = sent is not None and got < sent
                    if err is not None or short:
                        why = err or "connection closed early"
                        raise DownloadError(
                            f"the download of {r.url} broke off ({why}) after {got:,} bytes, "
                            f"kept in {part}; run again to resume")
                    server_done = True
    if r.size is not None and part.stat().st_size < r.size and not server_done:
        raise DownloadError(f"the download of {r.url} is incomplete ({part.stat().st_size:,} of "
                            f"{r.size:,} bytes, kept in {part}); run again to resume")
    bad = _check(part, r)
    if bad is not None:
        keep = folder / f"{r.name}.bad"
        os.replace(part, keep)
        raise DownloadError(
            f"the downloaded {r.name} is not the expected file: {bad}. It was kept as {keep} "
            "(nothing else was changed); delete it and run again, or fetch the file by hand "
            f"from {r.url}")
    os.replace(part, dest)
    return dest


def download_all(name: str, folder: str | os.PathLike, progress: bool = True,
                 timeout: float = 60, only: list[str] | None = None) -> list[Path]:
    """Every file of data set ``name`` (see :data:`REMOTES`), or those named in ``only``,
    into ``folder``."""
    if name not in REMOTES:
        raise ValueError(f"no downloads registered for {name!r}; known: {sorted(REMOTES)}")
    remotes = [r for r in REMOTES[name] if only is None or r.name in only]
    probe = Path(folder).resolve()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = sum(r.size or 0 for r in remotes if not (Path(folder) / r.name).exists())
    if need > free:
        raise DownloadError(f"{name} needs {need:,} bytes in {folder}, only {free:,} are free")
    out = []
    for r in remotes:
        try:
            out.append(download(r, folder, progress=progress, timeout=timeout))
        except DownloadError as e:  # unreachable: list every file still missing, not one
            if e.reason is None:
                raise
            rest = [x for x in remotes if not (Path(folder) / x.name).is_file()]
            raise DownloadError(offline_message(rest, Path(folder), e.reason), e.reason) from e
    return out


__all__ = ["DownloadError", "REMOTES", "Remote", "download", "download_all", "md5sum",
           "offline_message"]
