"""The torch backend: names, training (gradients reach every parameter), torch.compile,
torch.export, and the generated code."""

from __future__ import annotations

import torch

import cnndsl

EVERY_OP = """
network every_op(classes = 5) {
  input 3x20x20
  stem: conv 3x3 8 pad=same -> bn -> relu -> lrn 3 -> scale
  residual { conv 3x3 8 pad=1 -> bn -> relu -> conv 3x3 8 pad=1 } scale=0.2
  residual { conv 3x3 16 /2 pad=1 -> tanh } shortcut=project
  residual { conv 3x3 24 pad=1 -> sigmoid } shortcut=zeropad
  concat {
    conv 1x1 8 -> relu
    branch { conv 1x1 4 -> conv (1, 3) 8 pad=(0, 1) -> conv (3, 1) 8 pad=(1, 0) dilation=1 }
    maxpool 3x3 /1 pad=1 -> conv 1x1 8 groups=4
  }
  highway {
    conv 3x3 24 pad=1 -> relu
    gate bias=-2 { conv 3x3 24 pad=1 -> sigmoid }
  }
  avgpool 2x2 -> maxpool 3x3 /2 ceil=true
  trunk = dropout 0.1
  aux = @trunk -> avgpool global -> flatten -> fc classes -> softmax
  flatten -> fc 32 -> relu -> fc classes
  output
  output @aux
}
"""


def build():
    return cnndsl.compile_source(EVERY_OP, file="every_op.cnn")


def test_state_dict_names_follow_the_source():
    keys = list(build().to_torch().state_dict())
    assert keys[0] == "stem.weight"
    assert "conv1.weight" in keys and "shortcut1.conv1.weight" in keys and "shortcut1.bn1.weight" in keys
    assert "branch1.conv1.weight" in keys and "gate1.conv1.bias" in keys


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build().to_torch().train()
    main, aux = model(torch.randn(4, 3, 20, 20))
    assert main.shape == (4, 5) and aux.shape == (4, 5)
    (main.square().sum() + aux.square().sum()).backward()  # softmax: a plain sum would have no gradient
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_gate_bias_initialised():
    model = build().to_torch()
    assert torch.all(model.state_dict()["gate1.conv1.bias"] == -2.0)


def test_one_training_step_lowers_the_loss():
    torch.manual_seed(0)
    model = build().to_torch().train()
    x, y = torch.randn(16, 3, 20, 20), torch.randint(0, 5, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x)[0], y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_generated_code_reads_like_the_source():
    code = build().to_torch().code
    assert "self.stem(" in code and "highway" in code and "torch.cat" in code


def test_torch_export():
    model = build().to_torch().eval()
    x = torch.randn(2, 3, 20, 20)
    exported = torch.export.export(model, (x,))
    got, want = exported.module()(x), model(x)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-5)


def test_torch_compile():
    net = cnndsl.compile_source(
        """network tiny { input 3x12x12
           conv 3x3 8 pad=1 -> bn -> relu
           residual { conv 3x3 8 pad=1 -> bn }
           relu -> avgpool global -> fc 4 }""",
        file="tiny.cnn",
    )
    model = net.to_torch().eval()
    compiled = torch.compile(model)
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)
