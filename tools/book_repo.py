"""Keep the book's repository address in one place: ``repository.url`` in ``_config.yml``.

Every chapter carries that address twice, in its Colab badge and in its hidden setup cell
(Colab opens a notebook alone, without ``_config.yml``).  This script writes both from the
configuration, and checks that they agree with it (``tests/test_book_repo.py`` runs the
check, so a chapter that disagrees fails CI).

    python tools/book_repo.py                  # rewrite badges and setup cells from _config.yml
    python tools/book_repo.py URL [--branch B] # set repository.url (and branch) first, then rewrite
    python tools/book_repo.py --check          # exit 1 and list every disagreement
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

#: The hidden setup cell of every chapter (tag ``remove-cell``), with the address filled in.
SETUP_CELL = '''\
# Setup (hidden in the book). On Colab: clone the book's repository (the one this
# notebook was opened from when Colab says so, else REPO_URL; $UGACH_REPO_URL overrides
# both), install it with the packages Colab lacks (Colab's torch is kept), fetch the
# Wikipedia pairs, and work in the clone's book/ folder. In a checkout: use the library
# next to this notebook (book/..).
import os
import sys
from pathlib import Path

REPO_URL = "{url}"  # = repository.url in _config.yml
BRANCH = "{branch}"  # = repository.branch


def opened_from():
    """(repository, branch) of the GitHub notebook Colab opened, if its server says."""
    import json
    import re
    import urllib.parse
    import urllib.request

    host = os.environ.get("COLAB_JUPYTER_IP", "127.0.0.1")
    port = os.environ.get("KMP_TARGET_PORT", "9000")
    try:
        api = f"http://{{host}}:{{port}}/api/sessions"
        with urllib.request.urlopen(api, timeout=3) as r:
            sessions = json.load(r)
    except Exception:
        return None
    for s in sessions if isinstance(sessions, list) else []:
        path = urllib.parse.unquote(str(s.get("path", "")))
        m = re.search(r"github\\.com/([\\w.-]+)/([\\w.-]+)/blob/([^/]+)/", path)
        if m:
            return f"https://github.com/{{m[1]}}/{{m[2]}}", m[3]
    return None


if "google.colab" in sys.modules and not (Path.cwd().parent / "ugach_core").exists():
    import subprocess

    url, branch = opened_from() or (REPO_URL, BRANCH)
    url = os.environ.get("UGACH_REPO_URL", url)
    branch = os.environ.get("UGACH_REPO_BRANCH", branch)
    clone = Path.cwd() / "ugach-book"
    if not clone.exists():
        print(f"cloning {{url}} ({{branch}})")
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", branch, url,
                        str(clone)], check=True)
    # Only what Colab lacks is installed; its torch satisfies torch>=2.1 and stays.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", str(clone), "myst-nb",
                    "umap-learn"], check=True)
    os.chdir(clone / "book")
    # The Wikipedia pairs (about 1.3 MB, md5-checked) into the default data root.
    fetched = subprocess.run([sys.executable, "-m", "ugach_core", "data", "prepare",
                              "wikipedia", "--download", "--no-progress"], cwd=clone)
    if fetched.returncode != 0:
        print("The Wikipedia files could not be fetched: this chapter runs on "
              "SYNTHETIC data.")

_repo_root = Path.cwd().parent
if (_repo_root / "ugach_core").exists() and str(_repo_root) not in sys.path:
    sys.path.insert(0, str(_repo_root))'''

BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/{slug}/blob/{branch}/{path})")
BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")


def configured(root: Path = REPO) -> tuple[str, str]:
    """``(repository.url, repository.branch)`` from ``_config.yml``."""
    cfg = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    repo = cfg.get("repository") or {}
    url, branch = str(repo.get("url", "")).rstrip("/"), str(repo.get("branch", "main"))
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise SystemExit(f"_config.yml: repository.url must be https://github.com/<owner>/<repo>"
                         f" (Colab opens notebooks from GitHub), got {url!r}")
    return url, branch


def chapters(root: Path = REPO) -> list[Path]:
    return sorted((root / "book").glob("[0-9][0-9]_*.ipynb"))


def expected(nb_path: Path, url: str, branch: str, root: Path = REPO) -> tuple[str, str]:
    """The badge and the setup cell's source that ``nb_path`` must carry."""
    slug = url.removeprefix("https://github.com/")
    badge = BADGE.format(slug=slug, branch=branch, path=nb_path.relative_to(root).as_posix())
    return badge, SETUP_CELL.format(url=url, branch=branch)


def _setup_index(nb: dict) -> int | None:
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "code" and "remove-cell" in c.get("metadata", {}).get("tags", []):
            return i
    return None


def problems(root: Path = REPO) -> list[str]:
    """Every chapter whose badge or setup cell disagrees with ``_config.yml``."""
    url, branch = configured(root)
    out = []
    for p in chapters(root):
        nb = json.loads(p.read_text(encoding="utf-8"))
        badge, cell = expected(p, url, branch, root)
        badges = BADGE_RE.findall("".join(nb["cells"][0]["source"]))
        if badges != [badge]:
            out.append(f"{p.name}: Colab badge {badges} is not [{badge}]")
        i = _setup_index(nb)
        if i is None:
            out.append(f"{p.name}: no setup cell (a code cell tagged remove-cell)")
        elif "".join(nb["cells"][i]["source"]) != cell:
            out.append(f"{p.name}: setup cell {i} differs from tools/book_repo.py's SETUP_CELL "
                       f"for {url}")
    return out


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def sync(root: Path = REPO, url: str | None = None, branch: str | None = None) -> list[Path]:
    """Write ``url``/``branch`` into ``_config.yml`` (when given), then every chapter's badge
    and setup cell from it.  Returns the files changed."""
    changed = []
    if url and not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url.rstrip("/")):
        raise SystemExit(f"repository.url must be https://github.com/<owner>/<repo> (Colab "
                         f"opens notebooks from GitHub), got {url!r}")
    if url or branch:
        cfg_path = root / "_config.yml"
        text = cfg_path.read_text(encoding="utf-8")
        block = re.search(r"^repository:\n((?:[ \t]+.*\n?)*)", text, re.M)
        if block is None:
            raise SystemExit("_config.yml has no repository: block")
        body = block.group(1)
        if url:
            body = re.sub(r"^(\s+url:).*$", rf"\g<1> {url.rstrip('/')}", body, count=1,
                          flags=re.M)
        if branch:
            body = re.sub(r"^(\s+branch:).*$", rf"\g<1> {branch}", body, count=1, flags=re.M)
        new = text[:block.start(1)] + body + text[block.end(1):]
        if new != text:
            _write_atomic(cfg_path, new)
            changed.append(cfg_path)
    url, branch = configured(root)
    for p in chapters(root):
        raw = p.read_text(encoding="utf-8")
        nb = json.loads(raw)
        badge, cell = expected(p, url, branch, root)
        first = "".join(nb["cells"][0]["source"])
        if not BADGE_RE.search(first):
            raise SystemExit(f"{p}: no Colab badge in the first cell")
        nb["cells"][0]["source"] = _lines(BADGE_RE.sub(lambda m: badge, first, count=1))
        i = _setup_index(nb)
        if i is None:
            raise SystemExit(f"{p}: no setup cell (a code cell tagged remove-cell)")
        nb["cells"][i]["source"] = _lines(cell)
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if text != raw:
            _write_atomic(p, text)
            changed.append(p)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?", help="new repository.url (https://github.com/OWNER/REPO)")
    ap.add_argument("--branch", help="new repository.branch")
    ap.add_argument("--check", action="store_true", help="only list disagreements")
    args = ap.parse_args(argv)
    if args.check:
        found = problems()
        print("\n".join(found) or "badges and setup cells agree with _config.yml")
        return 1 if found else 0
    for p in sync(url=args.url, branch=args.branch):
        print(f"rewrote {p.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
