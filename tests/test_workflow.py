"""The publishing workflow (.github/workflows/book.yml), checked as far as it can be here:
it parses, triggers on pushes to main, fetches the real Wikipedia pairs, and runs the
README's own install and build commands before publishing ``_build/html``."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> dict[str, str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    out = {}
    for key, title in (("build", "Build the book"), ("test", "Run the tests")):
        m = re.search(rf"^\*\*{title}\*\*.*?^```bash\n(.+?)\n```", text, re.S | re.M)
        assert m, f"README.md has no '{title}' command block"
        out[key] = m.group(1).strip()
    return out


def test_workflow_builds_with_the_readme_commands_and_publishes() -> None:
    wf = yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())
    on = wf[True] if True in wf else wf["on"]          # YAML 1.1 reads `on:` as True
    assert on["push"]["branches"] == ["main"]
    assert wf["permissions"]["pages"] == "write"
    build = wf["jobs"]["build"]["steps"]
    runs = [s["run"].strip() for s in build if "run" in s]
    readme = _readme_commands()
    install, build_cmd = readme["build"].rsplit(" && ", 1)
    assert install in runs, f"the workflow does not run the README's install: {install}"
    assert build_cmd == ".venv/bin/jupyter-book build ."
    strict = build_cmd.replace(" build .", " build -W -n --keep-going .")  # + warnings as errors
    assert [r for r in runs if "jupyter-book" in r] == [strict]
    fetch = ".venv/bin/python -m ugach_core data prepare wikipedia --download --no-progress"
    assert runs.index(fetch) < runs.index(strict), "the data must be there before the build"
    upload = [s for s in build if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["steps"][0]["uses"].startswith("actions/deploy-pages")


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "Run the tests" in ci and 'bash -c "$test_cmd"' in ci
    assert _readme_commands()["test"].endswith(
        "UGACH_SMOKE=1 .venv/bin/python -m pytest --nbval-lax tests book")
