"""The ``lossproofs`` command line as a new user meets it: every --help is plain text, names the
command as it was invoked, and ``lossproofs test --help`` lists every target and profile."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lossproofs import cli, helptext

MARKUP = ("``", ":mod:", ":func:", ":class:", ":data:", ":meth:")
HELPS = [["test"], *([name] for name in cli.COMMANDS),
         *(["bench", name] for name in cli.BENCHMARKS)]


def _help(capsys, words: list[str]) -> str:
    """What ``lossproofs <words> --help`` prints (argparse exits 0 after printing)."""
    try:
        status = cli.main([*words, "--help"])
    except SystemExit as e:
        status = e.code
    assert status == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("words", [[], *HELPS], ids=lambda w: " ".join(w) or "lossproofs")
def test_help_is_plain_text_naming_the_command(words, capsys):
    text = _help(capsys, words)
    assert text.strip()
    assert not [m for m in MARKUP if m in text], text
    if words:  # the usage line names the command as run, not the module behind it
        assert text.startswith(f"usage: lossproofs {' '.join(words)} "), text.splitlines()[0]


def test_plain_strips_rest_roles_and_literals():
    assert helptext.plain(":func:`~a.b.c` and ``x`` via :mod:`m.n`, :class:`T <a.T>`::") == (
        "c and x via m.n, T:")
    text = helptext.description("``lossproofs x``: does ``y``.\n\n- a\n  b\n- :data:`C`\n")
    assert text == "Does y.\n\n- a b\n- C"


def test_test_help_lists_every_builtin_target():
    from lossproofs.targets import BUILTIN_TARGETS

    assert list(cli.BUILTIN_TARGET_HELP) == list(BUILTIN_TARGETS)
    listed = {line.split()[0] for line in cli.TEST_HELP.splitlines() if line.startswith("  ")}
    assert set(BUILTIN_TARGETS) <= listed
    for form in ("chunked:<acc_policy>,<chunking_method>,<batch_chunk_size>[,<acc_dtype>]",
                 "module:package.module", "module:path/to/file.py"):
        assert form in listed


def test_test_help_lists_every_profile_with_its_example_count():
    from hypothesis import settings

    import lossproofs.suite.plugin as plugin

    source = Path(plugin.__file__).read_text(encoding="utf-8")
    registered = re.findall(r'register_profile\(\s*"(\w+)"', source)
    assert list(cli.PROFILE_HELP) == registered
    for name, text in cli.PROFILE_HELP.items():
        assert f"{settings.get_profile(name).max_examples} examples" in text
        assert re.search(rf"^  {name} +{re.escape(text)}$", cli.TEST_HELP, re.M)


def test_test_help_documents_json_and_prints_without_torch_or_hypothesis():
    assert "--json PATH    also write the closing summary (function × property → pass / fail " \
           "/ not\n                 provided / not run) as JSON" in cli.TEST_HELP
    code = ("import sys; from lossproofs import cli; cli.main(['test', '--help']); "
            "print(sorted({'torch', 'hypothesis', 'pytest'} & set(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert run.stdout.startswith(cli.TEST_HELP) and run.stdout.rstrip().endswith("[]")


def test_every_target_option_lists_every_target(capsys):
    for command in ("report", "accuracy", "evidence"):
        text = " ".join(_help(capsys, [command]).split())
        for name in (*cli.BUILTIN_TARGET_HELP, "module:path/to/file.py"):
            assert name in text, (command, name)


def test_python_dash_m_names_itself_in_usage():
    run = subprocess.run([sys.executable, "-m", "lossproofs", "bench", "training", "--help"],
                         capture_output=True, text=True, timeout=120, check=True)
    assert run.stdout.startswith("usage: python -m lossproofs bench training ")
    run = subprocess.run([sys.executable, "-m", "benchmarks.training_equivalence", "--help"],
                         capture_output=True, text=True, timeout=120, check=True)
    assert run.stdout.startswith("usage: python -m benchmarks.training_equivalence ")
