"""The README (issue 31): at most 120 lines, a first screen that says what the suite does, how to set it up and shows
a committed figure, links that resolve, and every command in its code blocks checked:

- `hyperbench ... --help` and `--dry-run` forms are run and must exit 0;
- the smoke reproduction is run with the README's options into a temporary folder (marked slow: 2 min on an idle
  AVX2 machine, 7 on a busy one); the fast lane checks instead that it is the command .ci/run's metric gate runs;
- every other `hyperbench` command is parsed by the CLI's own parser (subcommands, options, arguments) without running;
- pip commands: every requirement parses, extras of the project exist in pyproject.toml, the torch pin is .ci/run's;
- the test command is the one .ci/run runs; scripts exist and are executable; any other program is on PATH.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
MAX_LINES = 120
FIRST_SCREEN = 25
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
SEPARATORS = {"&&", "||", ";", "|", "&"}
BUILTINS = {".", "source", "cd", "export"}
DIR_OPTIONS = ("runs_dir", "results_dir", "tables_dir")  # what the smoke gate redirects to a temporary folder


def code_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(language, lines) of every fenced code block."""
    blocks, lang, lines = [], None, []
    for line in text.splitlines():
        fence = re.match(r"^\s*```\s*([\w-]*)", line)
        if fence and lang is None:
            lang, lines = fence.group(1).lower(), []
        elif fence:
            blocks.append((lang, lines))
            lang = None
        elif lang is not None:
            lines.append(line)
    assert lang is None, "README: a code block is not closed"
    return blocks


def shell_lines(text: str) -> list[str]:
    """Every command line of the README's shell blocks, continuation lines joined, prompts removed."""
    out = []
    for lang, lines in code_blocks(text):
        if lang not in SHELL_BLOCKS:
            continue
        pending = ""
        for line in lines:
            if lang == "console":
                if not pending and not line.lstrip().startswith("$ "):
                    continue  # output, not a command
                line = line.lstrip().removeprefix("$ ") if not pending else line
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            line, pending = pending + line, ""
            if line.strip() and not line.strip().startswith("#"):
                out.append(line.strip())
        assert not pending, f"README: a continuation line ends a code block: {pending!r}"
    return out


def simple_commands(line: str) -> list[tuple[dict[str, str], list[str]]]:
    """(environment assignments, argv) of each simple command of a line (split at && || ; |), comments stripped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    commands, current = [], []
    for token in tokens + [";"]:
        if token in SEPARATORS:
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    out = []
    for argv in commands:
        env = {}
        if argv and argv[0] == "env":  # env [-u NAME]... [NAME=VALUE]... COMMAND
            argv = argv[1:]
            while argv and argv[0] in ("-u", "--unset", "-i"):
                argv = argv[2:] if argv[0] != "-i" else argv[1:]
        while argv and re.match(r"^[A-Za-z_]\w*=", argv[0]):
            name, value = argv.pop(0).split("=", 1)
            env[name] = value
        if argv:  # else an assignment alone
            out.append((env, argv))
    return out


README_TEXT = README.read_text()
LINES = shell_lines(README_TEXT)
COMMANDS = [(line, env, argv) for line in LINES for env, argv in simple_commands(line)]


def _hyperbench_args(argv: list[str]) -> list[str] | None:
    """The arguments after `hyperbench` (or `python -m bench.apps.cli`), else None."""
    if argv[0] == "hyperbench":
        return argv[1:]
    if argv[0] in ("python", "python3") and argv[1:3] == ["-m", "bench.apps.cli"]:
        return argv[3:]
    return None


@functools.cache
def _cli():
    import typer.main

    from bench.apps.cli import app

    return typer.main.get_command(app)


@functools.cache
def usage_error() -> type[Exception]:
    """The parser's UsageError: click's, or the copy of click that newer typer versions carry (typer._click)."""
    package = type(_cli()).make_context.__module__.rsplit(".", 1)[0]
    return importlib.import_module(f"{package}.exceptions").UsageError


def parse(args: list[str]) -> tuple[list[str], dict]:
    """Parse a hyperbench command line with the CLI's parser, running nothing: (subcommand path, its parameters).
    The parser's UsageError (unknown command or option, bad value, missing argument) propagates."""
    cmd, name, ctx, path = _cli(), "hyperbench", None, []
    args = list(args)
    while True:
        ctx = cmd.make_context(name, args, parent=ctx, resilient_parsing=False)
        if not hasattr(cmd, "resolve_command"):  # a command, not a group
            return path, ctx.params
        protected = getattr(ctx, "_protected_args", None)
        rest = list(protected if protected is not None else ctx.protected_args) + list(ctx.args)
        if not rest:
            raise usage_error()(f"`{' '.join(['hyperbench', *path])}` needs a subcommand", ctx)
        name, cmd, args = cmd.resolve_command(ctx, rest)
        path.append(name)


def _parsed(line: str, args: list[str]) -> tuple[list[str], dict]:
    try:
        return parse(args)
    except usage_error() as exc:
        pytest.fail(f"README command `{line}` does not parse: {exc.format_message() or 'a subcommand is missing'}", pytrace=False)


def kind(argv: list[str]) -> str:
    args = _hyperbench_args(argv)
    if args is not None:
        if "--help" in args:
            return "help"
        if "--dry-run" in args:
            return "dry-run"
        path, params = parse(args) if _parses(args) else ([], {})
        if path == ["reproduce"] and params.get("profile") == "smoke" and not params.get("executor"):
            return "smoke"
        return "hyperbench"
    if argv[0] == "pip" or argv[1:3] == ["-m", "pip"]:
        return "pip"
    if argv[0] in ("python", "python3") and argv[1:3] == ["-m", "pytest"]:
        return "pytest"
    if any(a.startswith("scripts/") for a in argv[:2]):
        return "script"
    return "other"


def _parses(args: list[str]) -> bool:
    try:
        parse(args)
    except usage_error():
        return False
    return True


def of_kind(name: str) -> list[tuple[str, dict, list[str]]]:
    return [(line, env, argv) for line, env, argv in COMMANDS if kind(argv) == name]


def _ids(commands):
    joined = [shlex.join(argv) for _, _, argv in commands]
    return [s if len(s) < 70 else s[:67] + "..." for s in joined]


def run_hyperbench(line: str, env: dict, args: list[str], timeout: int) -> subprocess.CompletedProcess:
    exe = shutil.which("hyperbench")
    prefix = [exe] if exe else [sys.executable, "-m", "bench.apps.cli"]
    done = subprocess.run(prefix + args, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"README command `{line}` exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


# -- the file itself ---------------------------------------------------------------------------------------------------


def test_readme_is_short():
    n = len(README_TEXT.splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; at most {MAX_LINES} (move prose to docs/)"


def test_first_screen_says_what_how_and_shows_a_figure():
    first = "\n".join(README_TEXT.splitlines()[:FIRST_SCREEN])
    assert re.search(r"benchmark", first, re.I) and "HyperRes" in first, "the first screen must say what the suite does"
    assert re.search(r"^pip install torch\S*", first, re.M), "the first screen must show the torch install"
    assert re.search(r"^pip install -e ", first, re.M), "the first screen must show the project install"
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", first)
    assert images, "the first screen must show a picture"
    assert all(p.startswith("paper_tables/generated/") for p in images), f"the picture must be a committed generated figure: {images}"


def test_relative_links_exist():
    links = re.findall(r"\]\(([^)\s]+)\)", README_TEXT)
    assert links
    missing = [link for link in links if not re.match(r"^[a-z]+:", link) and not link.startswith("#")
               and not (ROOT / link.split("#", 1)[0]).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


def test_picture_is_committed():
    if not (ROOT / ".git").exists() or not shutil.which("git"):
        return  # a source tree without git: test_relative_links_exist has checked the file is there
    for image in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README_TEXT):
        done = subprocess.run(["git", "ls-files", "--error-unmatch", image], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"README picture {image} is not committed"


def test_commands_were_found():
    kinds = {kind(argv) for _, _, argv in COMMANDS}
    assert {"help", "dry-run", "smoke", "pip", "pytest"} <= kinds, f"README commands found: {kinds}"


# -- commands that are run ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "env", "argv"), of_kind("help"), ids=_ids(of_kind("help")))
def test_help_forms_run(line, env, argv):
    run_hyperbench(line, env, _hyperbench_args(argv), timeout=120)


@pytest.mark.parametrize(("line", "env", "argv"), of_kind("dry-run"), ids=_ids(of_kind("dry-run")))
def test_dry_run_forms_run(line, env, argv):
    done = run_hyperbench(line, env, _hyperbench_args(argv), timeout=300)
    assert "runs to train" in done.stdout + done.stderr


def _ci_lines() -> list[list[str]]:
    """argv of every simple command of .ci/run."""
    out = []
    for line in CI_RUN.read_text().replace("\\\n", " ").splitlines():
        if line.strip() and not line.strip().startswith("#"):
            out.extend(argv for _, argv in simple_commands(line))
    return out


def test_smoke_is_the_ci_gate():
    """.ci/run's metric gate runs the README's smoke command (with its folders in a temporary one) on every CI run,
    so the fast lane checks they are the same command; test_smoke_runs runs it here (slow)."""
    smokes = of_kind("smoke")
    assert smokes, "README: no smoke reproduction command"
    gates = [argv for argv in _ci_lines() if (args := _hyperbench_args(argv)) and args[:1] == ["reproduce"]]
    assert gates, ".ci/run runs no `hyperbench reproduce`"
    gate_params = {k: v for k, v in parse(_hyperbench_args(gates[0]))[1].items() if k not in DIR_OPTIONS}
    for line, _, argv in smokes:
        params = {k: v for k, v in _parsed(line, _hyperbench_args(argv))[1].items() if k not in DIR_OPTIONS}
        assert params == gate_params, f"README smoke `{line}` is not .ci/run's gate `{shlex.join(gates[0])}`"


@pytest.mark.slow
@pytest.mark.parametrize(("line", "env", "argv"), of_kind("smoke"), ids=_ids(of_kind("smoke")))
def test_smoke_runs(line, env, argv, tmp_path):
    args = _hyperbench_args(argv) + ["--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"),
                                     "--tables-dir", str(tmp_path / "tables")]
    run_hyperbench(line, env, args, timeout=1800)
    assert (tmp_path / "results" / "smoke" / "results.csv").is_file()
    assert (tmp_path / "tables" / "smoke" / "table2_denoise.md").is_file()
    assert (tmp_path / "tables" / "smoke" / "claims.md").is_file()


# -- commands that are only parsed -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "env", "argv"), of_kind("hyperbench"), ids=_ids(of_kind("hyperbench")))
def test_other_hyperbench_commands_parse(line, env, argv):
    _parsed(line, _hyperbench_args(argv))


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize(("line", "env", "argv"), of_kind("pip"), ids=_ids(of_kind("pip")))
def test_pip_commands_parse(line, env, argv):
    from packaging.requirements import InvalidRequirement, Requirement

    args = argv[1:] if argv[0] == "pip" else argv[3:]
    assert args[:1] == ["install"], f"README command `{line}`: only `pip install` is expected"
    extras = set(_pyproject()["project"].get("optional-dependencies", {}))
    ci_pins = {r.name: str(r.specifier) for argv_ in _ci_lines() if argv_[1:4] == ["-m", "pip", "install"]
               for r in (Requirement(a) for a in argv_[4:] if not a.startswith("-") and not a.startswith("."))}
    rest = args[1:]
    while rest:
        arg = rest.pop(0)
        if arg in ("-e", "--editable"):
            target = rest.pop(0)
            path, _, extra = target.partition("[")
            assert (ROOT / path / "pyproject.toml").is_file(), f"README command `{line}`: {path} is not the project"
            unknown = {e.strip() for e in extra.rstrip("]").split(",") if e.strip()} - extras
            assert not unknown, f"README command `{line}`: no extra {sorted(unknown)} in pyproject.toml (has {sorted(extras)})"
        elif arg.startswith("-"):
            assert arg in ("-q", "--quiet", "-U", "--upgrade", "--no-deps", "--no-build-isolation"), f"README `{line}`: option {arg}?"
        else:
            try:
                req = Requirement(arg)
            except InvalidRequirement as exc:
                pytest.fail(f"README command `{line}`: {arg!r} is not a requirement: {exc}", pytrace=False)
            if req.name in ci_pins:
                assert str(req.specifier) == ci_pins[req.name], f"README pins {arg}, .ci/run {req.name}{ci_pins[req.name]}"


def test_test_command_is_the_one_ci_runs():
    tests = of_kind("pytest")
    assert tests, "README: no test command"
    ci = [argv for argv in _ci_lines() if argv[1:3] == ["-m", "pytest"]]
    for line, _, argv in tests:
        assert argv in ci, f"README test command `{line}` is not one .ci/run runs ({[shlex.join(a) for a in ci]})"


def test_scripts_exist():
    for line, _, argv in of_kind("script"):
        script = next(a for a in argv[:2] if a.startswith("scripts/"))
        assert (ROOT / script).is_file(), f"README command `{line}`: {script} does not exist"
        assert argv[0] in ("bash", "sh") or os.access(ROOT / script, os.X_OK), f"README command `{line}`: {script} is not executable"


@pytest.mark.parametrize(("line", "env", "argv"), of_kind("other"), ids=_ids(of_kind("other")))
def test_other_programs_exist(line, env, argv):
    if argv[0] in ("python", "python3"):
        assert argv[1:2] == ["-m"] and len(argv) > 2, f"README command `{line}`: expected `python -m MODULE`"
        import importlib.util

        assert importlib.util.find_spec(argv[2]) is not None, f"README command `{line}`: no module {argv[2]}"
        return
    assert argv[0] in BUILTINS or shutil.which(argv[0]), f"README command `{line}`: {argv[0]} is not a program here"
