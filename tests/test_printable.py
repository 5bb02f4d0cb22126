"""``printable`` and the log formatter: untrusted text shown on one line, controls visible."""

from __future__ import annotations

import io
import json
import logging

import pytest

from mr_engine.cli.common import fail, print_json
from mr_engine.logs import FORMAT, PrintableFormatter
from mr_engine.core.printable import json_printable, printable, printable_lines


@pytest.mark.parametrize("text, shown", [
    ("plain Grüße, 会议", "plain Grüße, 会议"),
    ("a\nb", "a\\nb"),
    ("a\r\nb", "a\\r\\nb"),
    ("tab\there", "tab\\there"),
    ("\x1b[2Jcleared", "\\x1b[2Jcleared"),
    ("nul\x00 bel\x07 us\x1f", "nul\\x00 bel\\x07 us\\x1f"),
    ("del\x7f", "del\\x7f"),
    ("nel\x85 csi\x9b[31m", "nel\\x85 csi\\x9b[31m"),
    ("line\u2028para\u2029", "line\\u2028para\\u2029"),
    ("undecodable \udcff", "undecodable \\udcff"),
    ("back\\slash", "back\\slash"),  # left alone: the result is for reading
    ("", ""),
])
def test_printable_escapes_every_control_and_nothing_else(text, shown):
    assert printable(text) == shown


def test_printable_lines_keeps_only_the_newlines():
    assert printable_lines("one\x1b\ntwo\r\n\u2028three") == "one\\x1b\ntwo\\r\n\\u2028three"


def test_json_printable_escapes_what_ensure_ascii_false_lets_through():
    value = {"s": "esc\x1b del\x7f nel\x85 csi\x9b ls\u2028 ps\u2029 lf\n ü 会"}
    text = json_printable(json.dumps(value, ensure_ascii=False))
    assert "\\u001b" in text and "\\u2028" in text and "\\u0085" in text
    assert not any(c in text for c in "\x1b\x7f\x85\x9b\u2028\u2029\n")
    assert "ü 会" in text and json.loads(text) == value  # the data is unchanged


def test_cli_errors_and_json_carry_no_control_characters(capsys):
    assert fail("database error: DETAIL:\n\x1b[2J \u2028") == 1
    assert capsys.readouterr().err == "error: database error: DETAIL:\\n\\x1b[2J \\u2028\n"
    print_json({"summary": "a\nb\x1b\u2028\x9b ü"})
    assert capsys.readouterr().out == '{\n  "summary": "a\\nb\\u001b\\u2028\\u009b ü"\n}\n'


def _format(record_args: dict, **kw) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PrintableFormatter(FORMAT))
    logger = logging.Logger("test.printable")
    logger.addHandler(handler)
    logger.error(record_args["msg"], *record_args.get("args", ()), **kw)
    return stream.getvalue()


def test_a_log_record_with_a_forged_line_stays_one_line():
    out = _format({"msg": "meeting request %s: %s",
                   "args": ("u1\nforged\x1b[2J", "accepted\r\n2026-01-01 INFO x\u2028y")})
    assert out.count("\n") == 1 and "\x1b" not in out and "\u2028" not in out
    assert "meeting request u1\\nforged\\x1b[2J: accepted\\r\\n2026-01-01 INFO x\\u2028y" in out


def test_a_traceback_keeps_its_lines_but_no_controls():
    try:
        raise ValueError("bad uid 'u1\x1b[2J\u2028'")
    except ValueError:
        out = _format({"msg": "failed for %s", "args": ("u1\nforged",)}, exc_info=True)
    lines = out.splitlines()
    assert lines[0].endswith("failed for u1\\nforged")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: bad uid 'u1\\x1b[2J\\u2028'"
    assert "\x1b" not in out and "\u2028" not in out


def test_a_stack_keeps_its_lines_but_no_controls():
    out = _format({"msg": "here"}, stack_info=True)
    assert out.splitlines()[1] == "Stack (most recent call last):"
    assert "\x1b" not in out
