"""The chapters' Colab path, offline: each chapter's hidden setup cell run as Colab runs it.

Colab cannot be reached from here, so the test builds what a Colab runtime looks like:
a fresh virtual environment whose interpreter already sees torch and the scientific stack
(through a ``.pth`` file, as Colab's preinstalled packages) but not ``ugach_core``; a stub
``google.colab`` module imported before the first cell; a working folder like ``/content``.
The repository is cloned from a ``file://`` copy of this working tree
(``$UGACH_REPO_URL``), pip may not reach any index (``PIP_NO_INDEX=1``: nothing may be
downloaded, so torch cannot be reinstalled), and the chapter then runs under the smoke
switch with no data root, as a reader's first run does when the Wikipedia download fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import book_repo  # noqa: E402

CHAPTER = "book/01_hamming_retrieval.ipynb"

RUNNER = r"""
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
# What Colab's kernel has imported before the reader's first cell.
nb.cells.insert(0, nbformat.v4.new_code_cell("import google.colab"))
NotebookClient(nb, timeout=600, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(nb, sys.argv[3])
"""


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", "-c", "user.name=ugach-test", "-c", "user.email=test@localhost",
                    *args], cwd=cwd, check=True, capture_output=True)


def _snapshot(dst: Path) -> None:
    """A git repository holding this working tree's files (tracked and new, not ignored)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)
    _git("init", "-q", "-b", "main", cwd=dst)
    _git("add", "-A", cwd=dst)
    _git("commit", "-q", "-m", "snapshot", cwd=dst)


def _colab_like_venv(root: Path) -> Path:
    """A fresh venv that sees this environment's packages, except ugach_core, as Colab's
    preinstalled ones.  Returns its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
                   check=True)
    farm = root / "preinstalled"
    farm.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("ugach_core", "ugach-core", "__editable__")):
            (farm / entry.name).symlink_to(entry)
    py = root / "venv" / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    Path(site.stdout.strip(), "colab_preinstalled.pth").write_text(f"{farm}\n")
    return py


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_setup_cell_on_a_colab_like_runtime(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _snapshot(src)
    py = _colab_like_venv(tmp_path)
    own_site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig."
                                    "get_paths()['purelib'])"], check=True,
                                   capture_output=True, text=True).stdout.strip())
    probe = subprocess.run([str(py), "-c", "import ugach_core"], capture_output=True,
                           cwd=tmp_path)
    assert probe.returncode != 0, "the fresh runtime must not see ugach_core before setup"
    stub = tmp_path / "stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""Stands in for Colab\'s google.colab."""\n')
    content = tmp_path / "content"
    content.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UGACH_", "PIP_"))}
    env.update(PYTHONPATH=str(tmp_path / "stub"), HOME=str(tmp_path / "home"),
               UGACH_SMOKE="1", UGACH_REPO_URL=src.as_uri(), UGACH_REPO_BRANCH="main",
               PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
               PIP_DISABLE_PIP_VERSION_CHECK="1", XDG_CACHE_HOME=str(tmp_path / "cache"),
               COLAB_JUPYTER_IP="127.0.0.1", KMP_TARGET_PORT="9",  # no sessions server
               # tests never download: the Wikipedia fetch goes to a closed local port
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               NO_PROXY="", no_proxy="")
    out_nb = tmp_path / "executed.ipynb"
    run = subprocess.run([str(py), "-c", RUNNER, str(REPO / CHAPTER), str(content),
                          str(out_nb)], env=env, capture_output=True, text=True, timeout=900,
                         cwd=content)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    clone = content / "ugach-book"
    assert (clone / "ugach_core" / "__init__.py").is_file(), "the setup cell did not clone"
    assert (clone / "book").is_dir()
    installed = sorted(p.name for p in own_site.iterdir())
    assert any(n.startswith("ugach_core") for n in installed), installed
    assert not any(n.startswith("torch") for n in installed), f"torch reinstalled: {installed}"
    nb = json.loads(out_nb.read_text())
    text = "\n".join(str(o.get("text", "")) + json.dumps(o.get("data", {}))
                     for c in nb["cells"] if c["cell_type"] == "code"
                     for o in c.get("outputs", []))
    assert f"cloning {src.as_uri()} (main)" in text
    # offline: the setup cell says the fetch failed, and the chapter's data note (not the
    # setup cell's own line) says that what follows is synthetic
    assert "The Wikipedia files could not be fetched" in text
    assert "**SYNTHETIC DATA.**" in text


class _Sessions(BaseHTTPRequestHandler):
    body = b"[]"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/api/sessions" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("path, expected", [
    ("fileId=https%3A%2F%2Fgithub.com%2Fa-reader%2Fugach-fork%2Fblob%2Fdev%2Fbook%2F"
     "03_correlation_graph.ipynb", ("https://github.com/a-reader/ugach-fork", "dev")),
    ("fileId=1AbCdriveid", None),              # opened from Drive: no repository to tell
])
def test_setup_cell_finds_the_fork_it_was_opened_from(monkeypatch, path, expected) -> None:
    handler = type("H", (_Sessions,), {"body": json.dumps(
        [{"path": path, "name": "03_correlation_graph.ipynb"}]).encode()})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("COLAB_JUPYTER_IP", "127.0.0.1")
        monkeypatch.setenv("KMP_TARGET_PORT", str(server.server_address[1]))
        ns: dict = {}
        exec(book_repo.SETUP_CELL.format(url="https://github.com/x/y", branch="main"), ns)
        assert ns["opened_from"]() == expected
    finally:
        server.shutdown()


def test_setup_cell_without_a_sessions_server(monkeypatch) -> None:
    monkeypatch.setenv("COLAB_JUPYTER_IP", "127.0.0.1")
    monkeypatch.setenv("KMP_TARGET_PORT", "9")      # discard port: nothing answers
    ns: dict = {}
    exec(book_repo.SETUP_CELL.format(url="https://github.com/x/y", branch="main"), ns)
    assert ns["opened_from"]() is None
