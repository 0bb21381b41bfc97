"""The README keeps its promises: its setup commands are what CI runs, its Python and gradio_client
snippets run as printed (and print what their comments say), its batch command works, and every link
between it and docs/ leads somewhere."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from benchmarks import local_app

README = REPO / "README.md"
DOCS = REPO / "docs"
MAX_LINES = 300


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def readme() -> str:
    return README.read_text()


def setup_commands() -> tuple[str, str]:
    """The README's first code block: the app's command and the tests' command, one line each."""
    block = code_blocks(readme(), "bash")[0]
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == 2, lines
    return lines[0], lines[1]


def test_the_readme_is_short_and_opens_with_what_a_newcomer_needs():
    text = readme()
    assert len(text.splitlines()) <= MAX_LINES
    body = text.split("---\n", 2)[2]  # after the Space's front matter
    first_screen = "\n".join(body.splitlines()[:45])
    assert "How far to trust it" in first_screen
    assert first_screen.index("How far to trust it") < first_screen.index("```bash")


def test_ci_runs_exactly_the_readme_test_command():
    app, tests = setup_commands()
    ci = (REPO / ".ci" / "run").read_text()
    assert tests in ci.splitlines()
    assert tests.endswith("&& .venv/bin/python -m pytest")
    # the app's command is the same install with the app's requirements, then the app itself
    assert app.endswith("&& .venv/bin/python app.py")
    steps = [step.strip() for step in app.split("&&")]
    assert "python3 -m venv .venv" in steps and ".venv/bin/pip install -r requirements.txt" in steps
    assert ".venv/bin/python -m realfake base" in steps
    for step in (s for s in app.split("&&") + tests.split("&&") if " -r " in s):
        assert (REPO / shlex.split(step)[-1]).is_file(), step


def run_snippet(code: str, **names) -> list[str]:
    """Run a README snippet from the repository root; its printed lines."""
    out = io.StringIO()
    with contextlib.chdir(REPO), contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__", **names})
    return out.getvalue().splitlines()


def assert_prints_what_it_says(code: str, printed: list[str]) -> None:
    """Each ``print(...)  # EXPECTED`` line printed EXPECTED (a trailing "..." allows more)."""
    promised = [
        line.split("  # ", 1)[1] for line in code.splitlines() if line.startswith("print(") and "  # " in line
    ]
    assert len(printed) >= len(promised)
    for expected, got in zip(promised, printed):
        if expected.endswith("..."):
            assert got.startswith(expected[:-3]), (expected, got)
        else:
            assert got == expected, (expected, got)


def test_the_python_snippet_runs_as_printed():
    (snippet,) = [block for block in code_blocks(readme(), "python") if "import realfake" in block]
    printed = run_snippet(snippet)
    assert len(printed) == 4 + 1  # the group photo's four faces, then what the file says
    assert all(
        re.match(r"\(\d", line) and line.split()[-1] in ("real", "uncertain", "fake") for line in printed[:4]
    )
    assert printed[4] == "No provenance data: most sites strip it, so its absence says nothing."


@pytest.fixture(scope="module")
def local_app_url(tmp_path_factory):
    server, url = local_app.start_app(tmp_path_factory.mktemp("app") / "app.log")
    yield url
    server.terminate()
    server.wait(timeout=30)


def test_the_gradio_client_snippet_runs_against_the_app(local_app_url):
    (snippet,) = [block for block in code_blocks(readme(), "python") if "gradio_client" in block]
    assert 'Client("http://127.0.0.1:7860/")' in snippet  # what a user running app.py types
    printed = run_snippet(snippet.replace("http://127.0.0.1:7860/", local_app_url))
    assert printed[0].startswith("Loaded as API")  # gradio_client's own line
    assert_prints_what_it_says(snippet, printed[1:])


def test_the_batch_command_works_as_printed(tmp_path):
    pytest.importorskip("ray")
    (line,) = [
        line
        for block in code_blocks(readme(), "bash")
        for line in block.splitlines()
        if " batch examples/" in line
    ]
    args = shlex.split(line.split("#")[0])
    assert args[:4] == [".venv/bin/python", "-m", "realfake", "batch"]
    args[args.index("--output") + 1] = str(tmp_path / "batch")
    done = run_cli(*args[3:])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Judged 5 photos in ") and "7 faces, 0 errors" in done.stdout


def links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in target]


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_every_link_leads_somewhere(page):
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target}"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", file.read_text(), flags=re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{page.name}: {target}"


def test_the_readme_and_docs_link_both_ways():
    linked = {(REPO / target.partition("#")[0]).resolve() for target in links(README)}
    for page in sorted(DOCS.glob("*.md")):
        assert page.resolve() in linked, f"the README does not link {page.name}"
        assert "../README.md" in links(page), f"{page.name} does not link back to the README"


def test_the_scripts_the_readme_names_exist():
    for script in set(re.findall(r"\b((?:train|benchmarks)/\w+\.py)\b", readme())):
        assert (REPO / script).is_file(), script
    commands = set(re.findall(r"python -m realfake (\w+)", readme()))
    assert commands == {"predict", "evaluate", "batch", "adapt", "base"}
    for command in sorted(commands - {"base"}):
        done = run_cli(command, "--help")
        assert done.returncode == 0 and "usage: python -m realfake " + command in done.stdout
