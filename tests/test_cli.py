"""The top-level command line: its explicit table of command groups and what each imports."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from vigil.cli import COMMAND_GROUPS, build_parser, main


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


@pytest.mark.parametrize("group", COMMAND_GROUPS, ids=lambda g: g.module)
def test_each_group_adds_exactly_the_commands_the_table_names(group):
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(group.module).add_commands(sub)
    assert tuple(sub.choices) == group.commands


def test_the_full_parser_lists_every_command_once_in_table_order():
    assert _commands(build_parser()) == [c for g in COMMAND_GROUPS for c in g.commands]


def test_a_command_imports_its_group_only():
    code = (
        "import sys\n"
        "from vigil.cli import main\n"
        "try:\n    main(['keys', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('onnxruntime', 'cv2', 'supervision', 'vigil.edge.worker') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "vigil keys new" in out or "usage: vigil keys" in out
    assert out.strip().splitlines()[-1] == "HEAVY []"


def test_unknown_command_is_an_argparse_error_listing_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'no-such-command'" in err
    for group in COMMAND_GROUPS:
        for command in group.commands:
            assert f"'{command}'" in err
