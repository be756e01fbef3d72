"""IR passes (cnndsl/passes) on the zoo and on hypothesis-generated networks, and the fused ops'
registry entries against their torch lowerings. Hand-made cases per pass: `test_passes.py`.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import cnndsl
from cnndsl.backends.torch.lower import LOWERINGS, to_torch
from cnndsl.ir.graph import from_json, to_json
from cnndsl.ir.infer import infer_shapes, node_stats
from cnndsl.ir.opdef import ShapeError
from cnndsl.ir.registry import REGISTRY, ops_with
from cnndsl.passes import (
    concat_elim,
    fold_bn,
    fuse_1x1,
    fuse_epilogue,
    fuse_post_norm,
    fuse_prologue,
    optimize,
    plan_buffers,
)
from tests.activation_refs import statements
from tests.pass_checks import (
    ZOO,
    assert_same_function,
    check_order,
    check_plan,
    compile_net,
    ops,
    pipeline,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("one_thread")

FUSED_OPS = ops_with("fused")



# ---- the pipeline on the zoo --------------------------------------------------------------

COUNTS = {  # file: (convs, conv kernels, bn folded of, residual adds fused, concats eliminated of)
    "resnet18.cnn": (20, 20, (20, 20), 8, (0, 0)),
    "resnet50.cnn": (53, 53, (53, 53), 16, (0, 0)),
    "googlenet.cnn": (59, 41, (0, 0), 0, (9, 9)),
    "variants/googlenet_torchvision.cnn": (59, 41, (59, 59), 0, (9, 9)),
    "inception_v3.cnn": (96, 77, (96, 96), 0, (15, 15)),
}


@pytest.mark.parametrize("file", sorted(COUNTS))
def test_zoo_counts(file):
    graph = cnndsl.compile_file(ZOO / file).graph
    before = snapshot(graph)
    new, weights, report = optimize(graph)
    assert snapshot(graph) == before and weights is None
    convs, kernels, (folded, bns), adds, (elim, concats) = COUNTS[file]
    assert (report.convs, report.conv_kernels) == (convs, kernels)
    assert (report.bns_folded, report.bns) == (folded, bns)
    assert report.residual_adds_fused == adds
    assert (report.concats_eliminated, report.concats) == (elim, concats)
    assert not {"bn", "relu"} & set(ops(new))
    check_order(new)
    check_plan(new)
    assert not infer_shapes(new)
    assert to_json(from_json(to_json(new))) == to_json(new)  # fused ops and annotations survive JSON
    assert str(report).startswith(graph.graph["name"] + f": {convs} convolutions → {kernels} conv kernels")


INCEPTION_V3_MAIN = """
use "lib/inception_v3.cnn"
network inception_v3_main(classes = 10) {
  input 3x75x75
  Conv2d_1a_3x3: basic_conv(3x3, 32, stride=2)
  Conv2d_2a_3x3: basic_conv(3x3, 32)
  Conv2d_2b_3x3: basic_conv(3x3, 64, pad=1)
  maxpool1: maxpool 3x3 /2
  Conv2d_3b_1x1: basic_conv(1x1, 80)
  Conv2d_4a_3x3: basic_conv(3x3, 192)
  maxpool2: maxpool 3x3 /2
  Mixed_5b: inception_a(32)
  Mixed_5c: inception_a(64)
  Mixed_5d: inception_a(64)
  Mixed_6a: inception_b()
  Mixed_6b: inception_c(128)
  Mixed_6c: inception_c(160)
  Mixed_6d: inception_c(160)
  Mixed_6e: inception_c(192)
  Mixed_7a: inception_d()
  Mixed_7b: inception_e()
  Mixed_7c: inception_e()
  avgpool: avgpool global -> dropout: dropout 0.5 -> fc: fc classes
}
"""


@pytest.mark.parametrize(("name", "graph_of"), [
    ("resnet18@32", lambda: cnndsl.compile_file(ZOO / "resnet18.cnn", input="3x32x32", set={"classes": 10}).graph),
    ("googlenet_torchvision@64", lambda: cnndsl.compile_file(ZOO / "variants/googlenet_torchvision.cnn",
                                                             input="3x64x64", set={"classes": 10}).graph),
    ("inception_v3_main@75", lambda: compile_net(INCEPTION_V3_MAIN)),
])
def test_zoo_pipeline_computes_the_same_function(name, graph_of):
    graph = graph_of()
    new, _ = assert_same_function(graph, pipeline, batch=1)
    check_plan(new)
    module = to_torch(new)
    assert module.code and any(type(m).__name__ == "FusedConv2d" for m in module.modules())
    assert "act=relu" in repr(module)


def test_resnet18_report():
    graph = cnndsl.compile_file(ZOO / "resnet18.cnn", input="3x32x32").graph
    _, _, report = optimize(graph)
    assert (report.convs, report.conv_kernels, report.bns_folded, report.residual_adds_fused) == (20, 20, 20, 8)
    assert report.acts_fused == 17 and report.kernels == 23  # 20 convs, maxpool, avgpool, fc


# ---- random networks ----------------------------------------------------------------------

ACTS = statements()  # every registry activation (with its scalars), from tests/activation_refs.py


@st.composite
def conv_unit(draw, width: int, stride: int = 1) -> str:
    k = draw(st.sampled_from([1, 3]))
    parts = [f"conv {k}x{k} {width}" + (f" /{stride}" if stride > 1 else "") + f" pad={k // 2}"
             + draw(st.sampled_from(["", " bias=false"]))]
    norm = draw(st.sampled_from(["", "", "bn", "scale", "bn -> scale", "scale bias=false", "layerscale init=0.5",
                                 "bn -> drop_path 0.1", "identity"]))
    if norm:
        parts.append(norm)
    act = draw(st.sampled_from(ACTS + ["", "relu"]))
    if act:
        parts.append(act)
    return " -> ".join(parts)


@st.composite
def networks(draw) -> str:
    c = draw(st.integers(1, 4))
    h = draw(st.sampled_from([3, 4, 5]))
    lines = [f"input {c}x{h}x{h}"]
    mid_output = False
    widths = st.integers(1, 5)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["chain", "residual", "residual", "concat", "highway", "pool", "preact", "modern"]))
        if kind == "modern":  # squeeze-and-excitation, a ConvNeXt block, group norm, PReLU, channel shuffle
            form = draw(st.sampled_from(["se", "convnext", "norms"]))
            n = len(lines)
            if form == "se":
                lines += [f"m{n} = conv 1x1 {c}", f"g{n} = @m{n} -> avgpool global -> conv 1x1 {draw(widths)} -> relu "
                          f"-> conv 1x1 {c} -> sigmoid", f"mul @g{n} @m{n}" if draw(st.booleans()) else f"mul @m{n} @g{n}"]
            elif form == "convnext":
                norm = "layernorm eps=1e-6" if c > 1 else "groupnorm 1"
                lines += ["residual {", f"conv 3x3 {c} pad=1 groups={c} -> {norm}",
                          f"conv 1x1 {2 * c} -> gelu -> conv 1x1 {c} -> layerscale init=0.5 -> drop_path 0.2", "}"]
            else:
                g = draw(st.sampled_from([d for d in (1, 2, 4) if c % d == 0]))
                lines.append(f"groupnorm {g} -> prelu" + draw(st.sampled_from(["", " channels=true"]))
                             + (f" -> channel_shuffle {g}" if g > 1 else ""))
        elif kind == "preact":  # a pre-activation unit: bn (+ act) that only the readers' prologues can take
            w = c if draw(st.booleans()) else draw(widths)
            k = draw(st.sampled_from([1, 3]))
            pre = draw(st.sampled_from(["bn", "scale", "bn -> relu", "bn -> sigmoid", "scale -> stanh a=1.5 s=0.5"]))
            conv = f"conv {k}x{k} {w} pad={k // 2}" + draw(st.sampled_from(["", " bias=false", " groups=1"]))
            if w == c and draw(st.booleans()):
                lines += ["residual {", f"{pre} -> {conv}", "}"]
            else:
                lines.append(f"{pre} -> {conv}")
                c = w
        elif kind == "chain":
            c = draw(widths)
            lines.append(draw(conv_unit(c)))
        elif kind == "residual":
            shortcut = draw(st.sampled_from(["identity", "project", "zeropad"]))
            stride = 1 if shortcut == "identity" else draw(st.sampled_from([1, 2]))
            w = c if shortcut == "identity" else c + draw(st.integers(0, 3))
            body = [draw(conv_unit(w, stride))]
            if draw(st.booleans()):
                body.append(draw(conv_unit(w)))
            extra = draw(st.sampled_from(["", " scale=0.5"])) + draw(st.sampled_from(["", " -> relu", " -> bn"]))
            lines += ["residual {", *body, f"}} shortcut={shortcut}{extra}"]
            c, h = w, (h - 1) // stride + 1
        elif kind == "concat":
            branches, total = [], 0
            for _ in range(draw(st.integers(2, 3))):
                w = draw(widths)
                shape = draw(st.sampled_from(["1x1", "reduce", "pool", "nested"]))
                if shape == "1x1":
                    branches.append(f"conv 1x1 {w}" + draw(st.sampled_from(["", " -> relu", " -> bn -> relu"])))
                elif shape == "reduce":
                    branches.append(f"conv 1x1 {draw(widths)} -> relu -> conv 3x3 {w} pad=1 -> relu")
                elif shape == "pool":
                    branches.append(f"maxpool 3x3 /1 pad=1 -> conv 1x1 {w} -> relu")
                else:
                    branches += ["branch { concat {", f"conv 1x1 {w}", f"conv 1x1 {w} -> sigmoid", "} }"]
                    w *= 2
                total += w
            lines += ["concat {", *branches, "}"]
            c = total
        elif kind == "highway":
            k = draw(st.sampled_from([1, 3]))
            h_act = draw(st.sampled_from(ACTS))
            lines += ["highway {", f"conv {k}x{k} {c} pad={k // 2}" + draw(st.sampled_from(["", " -> bn"]))
                      + f" -> {h_act}", f"gate bias=-1 {{ conv {k}x{k} {c} pad={k // 2} -> sigmoid }}", "}"]
        elif h >= 2:
            lines.append("maxpool 2x2 /2")
            h //= 2
        if not mid_output and draw(st.integers(0, 5)) == 0:
            lines.append("output")
            mid_output = True
    head = draw(st.sampled_from(["", "fc", "fc_res", "fc_highway"]))
    if head == "fc":
        lines.append("avgpool global -> fc 4" + draw(st.sampled_from(["", " -> bn", " -> bn -> relu", " -> tanh"])))
    elif head == "fc_res":
        lines += ["flatten -> fc 5 -> relu", "residual { fc 5 -> bn -> relu }"]
    elif head == "fc_highway":
        lines += ["avgpool global -> fc 5 -> relu", "highway {", "fc 5 -> tanh",
                  "gate bias=-1 { fc 5 -> sigmoid }", "}"]
    if mid_output and lines[-1] != "output":
        lines.append("output")
    return "network random {\n" + "\n".join("  " + line for line in lines) + "\n}\n"


PASSES = {
    "fold_bn": fold_bn,
    "fuse_1x1": lambda g, w: fuse_1x1(*fold_bn(g, w)),
    "fuse_epilogue": fuse_epilogue,
    "fuse_post_norm": lambda g, w: fuse_post_norm(*fuse_epilogue(*fold_bn(g, w))),
    "fuse_prologue": lambda g, w: fuse_prologue(*fuse_epilogue(*fold_bn(g, w))),
    "concat_elim": lambda g, w: (concat_elim(g), w),
    "plan_buffers": lambda g, w: (plan_buffers(g)[0], w),
    "pipeline": pipeline,
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=networks(), which=st.sampled_from(sorted(PASSES)))
def test_random_networks(source, which):
    graph = compile_net(source)
    new, _ = assert_same_function(graph, PASSES[which])
    if which in ("plan_buffers", "pipeline"):
        check_plan(new)
    if which == "pipeline":
        assert not {"bn", "highway", "zeropad"} & set(ops(new)) or "bn" in ops(graph) or "highway" in ops(graph)
        again, _, _ = optimize(new)  # idempotent on its own output: nothing left to do
        assert ops(again) == ops(new)


# ---- the fused ops' registry entries agree with their lowerings ---------------------------

FUSED_CASES: dict[str, list[tuple[list, dict, list[tuple[int, ...]]]]] = {
    "fused_conv": [
        ([(3, 3), 4], {"pad": 1, "act": "relu"}, [(2, 5, 5)]),
        ([(3, 3), 4], {"stride": 2, "pad": "same", "act": "stanh", "act_a": 1.7, "act_s": 0.6, "bias": False},
         [(2, 5, 5)]),
        ([(1, 1), 4], {"residual": "add", "scale": 0.2, "post_act": "relu"}, [(4, 3, 3), (4, 3, 3)]),
        ([(3, 3), 6], {"stride": 2, "pad": 1, "residual": "zeropad", "res_stride": 2, "post_act": "tanh",
                       "groups": 2}, [(4, 7, 7), (4, 7, 7)]),
        ([(1, 7), 3], {"pad": (0, 3), "act": "sigmoid"}, [(3, 2, 9)]),
        ([(3, 3), 4], {"pad": 1, "pre": True, "pre_act": "relu", "groups": 2}, [(2, 5, 5)]),
        ([(1, 1), 4], {"residual": "add", "post_norm": True, "post_act": "relu"}, [(4, 3, 3), (4, 3, 3)]),
    ],
    "fused_fc": [
        ([5], {"act": "relu"}, [(7,)]),
        ([4], {"residual": "add", "post_act": "sigmoid", "bias": False}, [(2, 3, 3), (4,)]),
        ([4], {"residual": "add", "post_norm": True}, [(4,), (4,)]),
    ],
    "highway_conv": [
        ([(3, 3), 4], {"pad": 1, "act": "relu"}, [(4, 5, 5), (4, 5, 5)]),
        ([(1, 1), 3], {"act": "stanh", "act_a": 1.5, "act_s": 0.5, "gate_act": "sigmoid"}, [(2, 4, 4), (3, 4, 4)]),
    ],
    "highway_fc": [([6], {"act": "tanh"}, [(6,), (6,)]), ([3], {"bias": False}, [(2, 2, 2), (3,)])],
    "slice": [([], {"start": 1, "stop": 3}, [(4, 2, 2)]), ([], {"stop": 2}, [(5,)])],
}

FUSED_ERRORS = [
    ("fused_conv", [(3, 3), 4], {"residual": "add"}, [(2, 5, 5), (4, 5, 5)]),
    ("fused_conv", [(3, 3), 4], {}, [(2, 5, 5), (4, 3, 3)]),
    ("fused_conv", [(3, 3), 4], {"residual": "zeropad"}, [(2, 5, 5), (2, 5, 5)]),
    ("fused_conv", [(3, 3), 4], {"residual": "zeropad", "res_stride": 2}, [(2, 5, 5), (6, 5, 5)]),
    ("fused_fc", [4], {"residual": "zeropad"}, [(4,), (4,)]),
    ("highway_conv", [(3, 3), 4], {"pad": 1}, [(4, 5, 5), (3, 5, 5)]),
    ("highway_conv", [(3, 3), 4], {"pad": 1, "groups": 2}, [(4, 5, 5), (4, 5, 5)]),
    ("slice", [], {"start": 2, "stop": 2}, [(4, 2, 2)]),
    ("slice", [], {"stop": 5}, [(4, 2, 2)]),
]


def test_fused_ops_are_internal_and_complete():
    for name in FUSED_OPS:
        assert not REGISTRY[name].user and name in LOWERINGS and name in FUSED_CASES


@pytest.mark.parametrize("name", FUSED_OPS)
def test_fused_op_shape_rule_matches_lowering(name):
    op = REGISTRY[name]
    for pos, kw, ins in FUSED_CASES[name]:
        attrs = op.bind(list(pos), dict(kw))
        out = op.shape(attrs, ins)
        lowered = LOWERINGS[name](attrs, ins, out)
        xs = [torch.randn(2, *s) for s in ins]
        with torch.no_grad():
            if isinstance(lowered, nn.Module):
                y = lowered(*xs)
                params = sum(p.numel() for p in lowered.parameters())
            else:
                y = lowered.fn(*xs, **lowered.kwargs)
                params = 0
        assert tuple(y.shape) == (2, *out), f"{name} {kw}"
        assert params == op.param_count(attrs, ins, out)
        assert op.macs(attrs, ins, out) >= 0


@pytest.mark.parametrize(("name", "pos", "kw", "ins"), FUSED_ERRORS)
def test_fused_op_shape_errors(name, pos, kw, ins):
    op = REGISTRY[name]
    with pytest.raises(ShapeError):
        op.shape(op.bind(list(pos), dict(kw)), ins)


def test_fused_macs_equal_the_unfused_sum():
    for file, size in (("resnet18.cnn", "3x32x32"), ("variants/googlenet_torchvision.cnn", "3x64x64"),
                       ("highway_cifar.cnn", None), ("highway_fc.cnn", None)):
        net = cnndsl.compile_file(ZOO / file, input=size)
        new, _, _ = optimize(net.graph)
        assert sum(node_stats(new, n).macs for n in new) == net.summary().macs, file
