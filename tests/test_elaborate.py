"""Elaboration: blocks, parameters, arithmetic, repetition, naming, named values, outputs,
`use`, overrides; and the structural errors it must catch."""

from __future__ import annotations

import pytest

import cnndsl
from cnndsl import CompileError


def compile_text(text: str, **kw):
    return cnndsl.compile_source(text, file="t.cnn", **kw)


def names(net) -> list[str]:
    return list(net.graph.nodes)


def test_auto_names_and_labels():
    net = compile_text("network n {\n input 3x8x8\n conv 3x3 4 -> relu\n head: conv 1x1 4 -> relu\n}")
    assert names(net) == ["input", "conv1", "relu1", "head", "relu2"]


def test_block_scope_seq_numbering_and_labelled_repeat():
    net = compile_text(
        """block unit(c, r = c // 2) {
             conv 1x1 r -> relu -> conv 1x1 c
           }
           network n {
             input 8x4x4
             stage: seq { unit(8) \n unit(8, r=2) x2 }
             layer: unit(8) x2
             unit(8)
             features: seq { conv 1x1 8 -> relu }
           }"""
    )
    nodes = names(net)
    for expected in ["stage.0.conv1", "stage.1.conv2", "stage.2.relu1", "layer.0.conv1", "layer.1.conv2",
                     "unit1.conv1", "features.0", "features.1"]:
        assert expected in nodes, expected
    assert net.graph.nodes["stage.0.conv1"]["attrs"]["out"] == 4  # r = c // 2
    assert net.graph.nodes["stage.1.conv1"]["attrs"]["out"] == 2


def test_arithmetic_and_overrides():
    src = "network n(width = 16, classes = 10) {\n input 3x8x8\n conv 3x3 (width * 3 / 2) pad=same\n fc classes + 1\n}"
    net = compile_text(src, set={"width": 8}, input="3x6x6")
    assert net.graph.nodes["conv1"]["shape"] == (12, 6, 6)
    assert net.graph.nodes["fc1"]["shape"] == (11,)
    with pytest.raises(CompileError, match="must be an integer, got 7.5"):
        compile_text(src, set={"width": 5})


def test_side_chains_named_values_and_outputs():
    net = compile_text(
        """network n {
             input 3x16x16
             trunk = conv 3x3 8 pad=1 -> relu
             left = @trunk -> maxpool 2x2
             right = @trunk -> conv 3x3 8 /2 pad=1
             concat @left @right
             aux = @trunk -> avgpool global -> fc 3
             fc 5
             output
             output @aux
           }"""
    )
    g = net.graph
    assert g.nodes["concat1"]["shape"] == (16, 8, 8)
    assert [g.nodes[o]["shape"] for o in g.graph["outputs"]] == [(5,), (3,)]


def test_residual_shortcuts():
    net = compile_text(
        """network n {
             input 16x8x8
             residual { conv 3x3 32 /2 pad=1 -> bn } shortcut=project
             residual { conv 3x3 64 /2 pad=1 } shortcut=zeropad
             residual { conv 3x3 64 pad=1 } scale=0.1
             residual { conv 3x3 64 pad=1 \n shortcut { conv 1x1 64 -> bn } }
           }"""
    )
    g = net.graph
    assert g.nodes["shortcut1.conv1"]["attrs"]["stride"] == (2, 2)
    assert g.nodes["shortcut2"]["op"] == "zeropad" and g.nodes["shortcut2"]["shape"] == (64, 2, 2)
    assert g.nodes["add3"]["attrs"]["scale"] == 0.1
    assert "shortcut3.conv1" in g


def test_highway_gate_bias():
    net = compile_text(
        """network n {
             input 8x6x6
             highway {
               conv 3x3 8 pad=1 -> relu
               gate bias=-3 { conv 3x3 8 pad=1 -> sigmoid }
             }
           }"""
    )
    assert net.graph.nodes["gate1.conv1"]["attrs"]["bias_init"] == -3.0
    assert net.graph.nodes["highway1"]["shape"] == (8, 6, 6)


@pytest.mark.parametrize(
    "src, message",
    [
        ("block a() { b() }\nblock b() { a() }\nnetwork n { input 3x8x8\n a() }", "calls itself (a -> b -> a)"),
        ("network n { input 3x8x8\n @nope -> relu }", "unknown value `@nope`"),
        ("network n { input 3x8x8\n a: relu\n a: relu }", "the name `a` is used twice"),
        ("network n { input 3x8x8\n relu\n output\n output }", "is already an output"),
        ("block b() { output }\nnetwork n { input 3x8x8\n b() }", "allowed only in a network"),
        ("block b(c) { conv 1x1 c }\nnetwork n { input 3x8x8\n b() }", "needs the argument `c`"),
        ("block b(c) { conv 1x1 c }\nnetwork n { input 3x8x8\n b(c=1, d=2) }", "has no parameter `d`"),
        ("network n { input 3x8x8\n repeat -1 { relu } }", "whole number ≥ 0"),
        ("network n { input 3x8x8\n highway { relu } }", "needs a gate"),
        ("network n { input 3x8x8\n conv 3x3 4 padding=1 }", "conv has no argument `padding`"),
        ("network n { input 3x8x8\n conv 3x3 (4 // 0) }", "division by zero"),
        ("network n { input 3x8x8\n concat { relu } }", "two or more branches"),
        ("block b() { relu }", "defines no network"),
        ("network n { relu }", "has no input"),
        ("network n { input 3x8x8\n relu x100000 }", "the `repeat` limit is 10,000"),
    ],
)
def test_structural_errors(src, message):
    with pytest.raises(CompileError) as info:
        compile_text(src)
    assert message in info.value.message


def test_use_resolution_and_cycles(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.cnn").write_text('use "b.cnn"\nblock a() { relu }\n')
    (lib / "b.cnn").write_text("block b() { sigmoid }\n")
    main = tmp_path / "main.cnn"
    main.write_text('use "lib/a.cnn"\nnetwork n { input 3x4x4\n a() -> b() }\n')
    assert names(cnndsl.compile_file(main)) == ["input", "a1.relu1", "b1.sigmoid1"]
    # the same library found along the search path
    elsewhere = tmp_path / "x.cnn"
    elsewhere.write_text('use "a.cnn"\nnetwork n { input 3x4x4\n a() }\n')
    assert cnndsl.compile_file(elsewhere, search=[str(lib)]).graph.number_of_nodes() == 2
    (lib / "b.cnn").write_text('use "a.cnn"\nblock b() { sigmoid }\n')
    with pytest.raises(CompileError, match="`use` cycle: a.cnn -> b.cnn -> a.cnn"):
        cnndsl.compile_file(main)


def test_repeat_zero_passes_the_input_through():
    net = compile_text("network n(k = 0) {\n input 3x8x8\n repeat k { conv 3x3 3 pad=1 }\n relu\n}")
    assert names(net) == ["input", "relu1"]
    resnet8 = cnndsl.compile_file("zoo/resnet_cifar.cnn", set={"n": 1})
    # 464 (stem) + 4,672 + 13,952 + 55,552 (one basic block a stage) + 650 (fc)
    assert resnet8.summary().params == 75_290


@pytest.mark.parametrize(
    "src, limit, message",
    [
        ("network n { input 3x8x8\n repeat 300 { repeat 300 { relu } } }", "nodes", "the `nodes` limit is 20,000"),
        ("network n { input 3x8x8\n repeat 20000 { relu } }", "repeat", "the `repeat` limit is 10,000"),
        ("block a(k) { a(k) }\nnetwork n { input 3x8x8\n a(1) }", None, "calls itself"),
        ("network n { input 3x8x8\n conv 1x1 (10000000 * 10000000) }", "number", "the `number` limit is 1e+12"),
    ],
)
def test_resource_limits_are_named_errors(src, limit, message):
    with pytest.raises(CompileError) as info:
        compile_text(src)
    assert message in info.value.render()


def test_limits_are_configurable_and_depth_is_checked():
    from cnndsl.elaborate.context import Limits

    deep = "".join(f"block b{i}() {{ b{i + 1}() }}\n" for i in range(30)) + "block b30() { relu }\n"
    src = deep + "network n { input 3x8x8\n b0() }"
    assert compile_text(src).graph.number_of_nodes() == 2
    with pytest.raises(CompileError, match="the `depth` limit is 10"):
        compile_text(src, limits=Limits(depth=10))
    many = "network n { input 3x8x8\n" + "cnov 1x1 4\n" * 60 + "}"
    with pytest.raises(CompileError) as info:
        compile_text(many, limits=Limits(errors=5))
    assert len(info.value.diagnostics) == 6 and "the `errors` limit is 5" in info.value.diagnostics[-1].message
    big = "network n { input 3x8x8\n repeat 300 { repeat 300 { relu } } }"
    assert compile_text(big, limits=Limits(nodes=100_000)).graph.number_of_nodes() == 90_001
    with pytest.raises(CompileError, match="the `work` limit is 200,000"):  # three steps a layer
        compile_text(big, limits=Limits(nodes=100_000, work=200_000))


def test_aliases_lower_as_their_op_and_labelled_construct_repeats_are_scoped():
    net = compile_text("network n {\n input 3x8x8\n conv 3x3 4 -> batchnorm -> linear 10\n}")
    assert [net.graph.nodes[n]["op"] for n in net.graph] == ["input", "conv", "bn", "fc"]
    assert net.to_torch()(__import__("torch").randn(2, 3, 8, 8)).shape == (2, 10)
    net = compile_text("network n {\n input 8x8x8\n res: residual { conv 3x3 8 pad=1 } x2\n}")
    assert names(net)[1:] == ["res.0.conv1", "res.0.add1", "res.1.conv1", "res.1.add1"]
