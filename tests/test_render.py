"""Command rendering: values reach the program as literal text in every quoting context."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polytune.model import CommandTemplate
from polytune.render import format_value, render_command, render_text

TEMPLATES = [
    "printf '%s\\n' {{ v }}",
    'printf "%s\\n" "{{ v }}"',
    "printf '%s\\n' '{{ v }}'",
    "printf '%s\\n' --v={{v}}",
    'printf "%s\\n" "--v={{ v }}"',
]
EXPECTED_PREFIX = ["", "", "", "--v=", "--v="]


def run_sh(command: str) -> str:
    # bytes, not text=True: universal newlines would turn a value's "\r" into "\n"
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, check=True).stdout
    return out.decode("utf-8", errors="surrogateescape")


@pytest.mark.parametrize(("template", "prefix"), list(zip(TEMPLATES, EXPECTED_PREFIX, strict=True)))
@pytest.mark.parametrize(
    "value",
    [
        "relu",
        "two words",
        "it's",
        'say "hi"',
        "$(touch pwned)",
        "`id`",
        "; rm -rf ~",
        "back\\slash",
        "$HOME",
        "a'b\"c$d",
    ],
)
def test_hostile_values_stay_literal(
    template: str, prefix: str, value: str, tmp_path: object
) -> None:
    out = run_sh(render_text(template, {"v": value}))
    assert out == f"{prefix}{value}\n"


@settings(max_examples=60, deadline=None)
@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        max_size=30,
    )
)
def test_any_text_round_trips_through_the_shell(value: str) -> None:
    for template in TEMPLATES[:3]:
        assert run_sh(render_text(template, {"v": value})) == value + "\n"


def test_format_value_matches_polyaxon_str() -> None:
    assert format_value(0.1) == "0.1"
    assert format_value(True) == "True"
    assert format_value(3) == "3"
    assert format_value([1, 2]) == "[1, 2]"
    assert format_value({"a": 1}) == '{"a": 1}'


def test_argv_and_list_commands() -> None:
    argv = CommandTemplate("argv", ("python", "train.py", "--act={{ act }}", "{{ act }}"))
    assert render_command(argv, {"act": "a b"}) == "python train.py '--act=a b' 'a b'"
    shell = CommandTemplate("shell", ("cd x", "echo {{ a }}"))
    assert render_command(shell, {"a": 1}) == "cd x && echo 1"


def test_unknown_name_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        render_text("{{ nope }}", {})
