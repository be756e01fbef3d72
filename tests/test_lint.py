"""Warnings for likely mistakes that still compile, and the ways to silence them."""

from __future__ import annotations

import cnndsl
from cnndsl.cli import main
from tests.conftest import ZOO


def codes(src: str) -> list[tuple[int, str]]:
    net = cnndsl.compile_source(src, file="w.cnn")
    return [(w.span.line, w.code) for w in net.warnings]


def test_unused_value_and_side_chain():
    src = "network n {\n input 3x8x8\n x = conv 1x1 4\n @x -> relu\n conv 1x1 2\n}"
    assert codes(src) == [(4, "unused")]  # the side chain's result; x itself is read


def test_dropout_after_softmax():
    assert codes("network n {\n input 8\n fc 4 -> softmax -> dropout 0.5\n}") == [(3, "dropout-after-softmax")]


def test_pool_that_drops_rows():
    assert codes("network n {\n input 3x9x9\n maxpool 2x2\n}") == [(3, "pool-drops")]
    assert codes("network n {\n input 3x9x9\n maxpool 2x2 ceil=true\n}") == []
    assert codes("network n {\n input 3x112x112\n maxpool 3x3 /2 pad=1\n}") == []  # ResNet's stem reaches every row


def test_silencing_comments():
    src = "network n {\n input 3x9x9\n maxpool 2x2   # cnndsl: ignore[pool-drops]\n avgpool 2x2 # cnndsl: ignore\n}"
    assert codes(src) == []
    assert codes("network n {\n input 3x9x9\n maxpool 2x2   # cnndsl: ignore[unused]\n}") == [(3, "pool-drops")]


def test_cli_prints_warnings_and_still_succeeds(tmp_path, capsys):
    f = tmp_path / "w.cnn"
    f.write_text("network n {\n input 3x9x9\n maxpool 2x2\n}\n")
    assert main(["check", str(f)]) == 0
    err = capsys.readouterr().err
    assert f"{f}:3:2: warning: maxpool on 3x9x9 ignores the last 1 row and 1 column" in err
    assert main(["check", "--no-warnings", str(f)]) == 0
    assert capsys.readouterr().err == ""


def test_the_zoo_is_warning_free():
    for path in sorted(ZOO.rglob("*.cnn")):
        if path.parent.name != "lib":
            assert cnndsl.compile_file(path).warnings == [], path
