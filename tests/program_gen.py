"""A Hypothesis strategy for random *well-formed* `.cnn` programs (`networks()`), for the property
tests: the generator tracks the tensor shape as it writes, so every layer fits, and returns
the program text with the `--set` overrides it uses."""

from __future__ import annotations

import math
import re

from hypothesis import strategies as st

from tests.activation_refs import statements

ACTIVATIONS = statements()  # every registry activation, with and without its scalars
ACTIVATION_NAMES = sorted({a.split()[0] for a in ACTIVATIONS})
MODERN = ["identity", "drop_path", "layerscale", "prelu", "layernorm", "groupnorm"]  # shape-preserving, any rank

# Parametric blocks the generator may call; each is written into the program only when used.
BLOCKS = {
    "b_conv": "block b_conv(width, stride = 1, k = 3) {\n  conv k width /stride pad=(k // 2) -> bn -> relu\n}\n",
    "b_res": "block b_res(width, stride = 1, shortcut = identity) {\n"
             "  residual {\n    conv 3x3 width /stride pad=1 bias=false -> bn -> relu\n"
             "    conv 3x3 width pad=1 bias=false -> bn\n  } shortcut=shortcut\n  relu\n}\n",
    "b_inc": "block b_inc(a, b) {\n  concat {\n    conv 1x1 a\n    conv 3x3 (b * 2) pad=1 -> conv 1x1 b\n"
             "    maxpool 3x3 /1 pad=1\n  }\n}\n",
    # the language after 2016: a block's incoming value and its shape, conditionals, size components
    "b_dense": "block b_dense(growth) {\n  new = bn -> relu -> conv 3x3 growth pad=1\n  concat @in @new\n}\n",
    "b_half": "block b_half(out = max(in.c // 2, 1)) {\n  conv 1x1 out -> bn\n}\n",
    "b_cond": "block b_cond(out, stride = 1) {\n  y = conv 3x3 out /stride pad=1 -> bn\n"
              "  if stride == 1 and in.c == out {\n    add @in @y\n  } else if not (out > 4) { relu } else {\n"
              "    @y -> relu6\n  }\n}\n",
    "b_kconv": "block b_kconv(width, k = 3x3) {\n  conv k width pad=(k.h // 2, k.w // 2) -> conv 1x1 (in.c + width - width)\n}\n",
}

KERNELS = [(1, 1), (3, 3), (5, 5), (7, 7), (1, 3), (3, 1), (1, 7), (7, 1)]
MAX_C = 24


def out_len(size: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> int:
    """PyTorch's output length of a sliding window (written independently of cnndsl's).

    A window larger than the padded input gives 0 even in ceil mode, as cnndsl refuses it (PyTorch
    does not: see test_shape_rules.py::test_ceil_mode_window_may_overhang_a_small_input).
    """
    num = size + 2 * p - d * (k - 1) - 1
    if num < 0:
        return 0
    if not ceil:
        return num // s + 1
    out = -(-num // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return out


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


class Gen:
    """Writes one random program; every method returns source text and the shape it leaves."""

    def __init__(self, draw) -> None:
        self.draw = draw
        self.counter = 0

    # ---- small helpers
    def pick(self, options):
        return self.draw(st.sampled_from(options))

    def chance(self, p: float) -> bool:
        """True with probability p; False when Hypothesis shrinks (draws shrink towards 0)."""
        return self.draw(st.integers(0, 99)) >= 100 - int(p * 100)

    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def pair(self, v: tuple[int, int], square: bool = True) -> str:
        a, b = v
        forms = [f"({a}, {b})", f"{a}x{b}"]
        if a == b and square:
            forms += [str(a), str(a)]
        return self.pick(forms)

    def join_args(self, args: list[str]) -> str:
        out = args[0]
        for a in args[1:]:
            out += (" \\\n      " if self.chance(0.04) else " ") + a
        return out

    def bias_word(self, bias: bool) -> str:
        return self.pick(["true", "on", "yes"] if bias else ["false", "off", "no"])

    def stride_text(self, s: tuple[int, int], default_ok: bool) -> str | None:
        """`/2`, `/(2, 1)`, `stride=2`…; None when the default may be left implicit."""
        if s == (1, 1) and default_ok and self.chance(0.7):
            return None
        form = self.pick(["slash", "kw"])
        text = self.pair(s)
        return f"/{text}" if form == "slash" else f"stride={text}"

    # ---- layers on feature maps
    def conv(self, shape, stride=(1, 1), keep_grid=False, out=None):
        """A conv; keep_grid: 'same' padding, so the grid becomes ceil(H/stride)."""
        c, h, w = shape
        kh, kw = self.pick(KERNELS)
        dil = self.pick([(1, 1), (1, 1), (1, 1), (2, 2), (1, 2), (2, 1)])
        if not keep_grid:
            sh = self.int(1, 3)
            stride = (sh, sh) if self.chance(0.8) else (sh, self.int(1, 3))
        same = (dil[0] * (kh - 1) // 2, dil[1] * (kw - 1) // 2)
        style = self.pick(["same", "numbers"]) if keep_grid else self.pick(["none", "int", "pair", "same", "valid"])
        if style == "numbers":
            pad, pad_text = same, self.pair(same)
        elif style == "same":
            pad, pad_text = same, "same"
        elif style == "int":
            p = self.int(0, max(kh, kw) // 2 + 1)
            pad, pad_text = (p, p), str(p)
        elif style == "pair":
            pad = (self.int(0, kh // 2 + 1), self.int(0, kw // 2 + 1))
            pad_text = self.pair(pad)
        else:
            pad, pad_text = (0, 0), ("valid" if style == "valid" else None)
        oh = out_len(h, kh, stride[0], pad[0], dil[0])
        ow = out_len(w, kw, stride[1], pad[1], dil[1])
        if oh < 1 or ow < 1:  # does not fit: fall back to 'same' padding, which always fits
            pad, pad_text = same, "same"
            oh, ow = out_len(h, kh, stride[0], pad[0], dil[0]), out_len(w, kw, stride[1], pad[1], dil[1])
        if pad == same:
            assert (oh, ow) == (cdiv(h, stride[0]), cdiv(w, stride[1]))
        # channels and groups
        if out is None:
            if c <= 8 and self.chance(0.15):  # depthwise (with a channel multiplier)
                out, groups = c * self.int(1, 2), c
            else:
                out = self.int(1, 8)
                groups = self.pick(divisors(math.gcd(c, out)))
        else:
            groups = self.pick(divisors(math.gcd(c, out)))
        table = None
        if groups == 1 and self.chance(0.07):  # a connection table (LeNet-5's C3): each output reads some inputs
            table = [sorted(self.draw(st.sets(st.integers(0, c - 1), min_size=1, max_size=c))) for _ in range(out)]
        args = ["conv"]
        if self.chance(0.05):
            args += [f"kernel={self.pair((kh, kw))}", f"out={out}"]
        else:
            args += [self.pair((kh, kw)), str(out)]
        st_text = self.stride_text(stride, default_ok=True)
        if st_text:
            args.append(st_text)
        if pad_text is not None:
            args.append(f"pad={pad_text}")
        if dil != (1, 1) or self.chance(0.1):
            args.append(f"dilation={self.pair(dil)}")
        if groups != 1 or self.chance(0.1):
            args.append(f"groups={groups}")
        if table is not None:
            args.append("table=(" + ", ".join("(" + ", ".join(map(str, row)) + ",)" for row in table) + ",)")
        bias = True
        if self.chance(0.4):
            bias = self.chance(0.5)
            args.append(f"bias={self.bias_word(bias)}")
        self.last_conv_bias = bias
        return self.join_args(args), (out, oh, ow)

    def pool(self, shape, stride=(1, 1), keep_grid=False):
        c, h, w = shape
        kind = self.pick(["maxpool", "avgpool"])
        if keep_grid:
            k = (self.pick([1, 3, 5]), self.pick([1, 3, 5])) if self.chance(0.3) else (3, 3)
            if self.chance(0.2):
                k = (k[0], k[0])
            pad = (k[0] // 2, k[1] // 2)
            pad_text = self.pick(["same", self.pair(pad)])
            ceil = stride == (1, 1) and self.chance(0.3)
            oh, ow = out_len(h, k[0], stride[0], pad[0]), out_len(w, k[1], stride[1], pad[1])
            assert (oh, ow) == (cdiv(h, stride[0]), cdiv(w, stride[1]))
            args = [kind, self.pair(k), "/" + self.pair(stride) if self.chance(0.5) else f"stride={self.pair(stride)}",
                    f"pad={pad_text}"]
            if ceil:
                args.append("ceil=true")
            if kind == "avgpool" and self.chance(0.3):
                args.append(f"count_pad={self.bias_word(self.chance(0.3))}")
            return self.join_args(args), (c, oh, ow)
        if self.chance(0.15):  # LeNet's trainable subsampling: no padding, no ceil
            k = (self.int(1, 3), self.int(1, 3)) if self.chance(0.3) else (2, 2)
            s = k if self.chance(0.6) else (self.int(1, 2), self.int(1, 2))
            oh, ow = out_len(h, k[0], s[0], 0), out_len(w, k[1], s[1], 0)
            if oh < 1 or ow < 1:
                return "subsample 1x1", (c, h, w)
            args = ["subsample"] + ([] if k == (2, 2) and self.chance(0.5) else [self.pair(k)])
            if s != k:
                args.append(f"stride={self.pair(s)}")
            return " ".join(args), (c, oh, ow)
        k = (self.int(1, 4), self.int(1, 4)) if self.chance(0.3) else (self.pick([2, 3]),) * 2
        implicit = self.chance(0.4)
        s = k if implicit else ((self.int(1, 3),) * 2 if self.chance(0.8) else (self.int(1, 3), self.int(1, 3)))
        pad = (self.int(0, k[0] // 2), self.int(0, k[1] // 2)) if self.chance(0.4) else (0, 0)
        ceil = self.chance(0.4)
        oh, ow = out_len(h, k[0], s[0], pad[0], 1, ceil), out_len(w, k[1], s[1], pad[1], 1, ceil)
        if oh < 1 or ow < 1:
            return f"{kind} 1x1", (c, h, w)
        args = [kind, self.pair(k)]
        if not implicit:
            args.append(f"/{self.pair(s)}" if self.chance(0.5) else f"stride={self.pair(s)}")
        if pad != (0, 0) or self.chance(0.1):
            args.append(f"pad={self.pair(pad)}")
        if ceil or self.chance(0.1):
            args.append(f"ceil={self.bias_word(ceil)}")
        if kind == "avgpool" and self.chance(0.3):
            args.append(f"count_pad={self.bias_word(self.chance(0.3))}")
        return self.join_args(args), (c, oh, ow)

    def simple(self, shape):
        """A shape-preserving layer: norms, activations, scale, dropout."""
        kinds = ["relu", "bn", "scale", "dropout", "softmax", *ACTIVATION_NAMES, *MODERN]
        if len(shape) == 3:
            kinds += ["lrn", "channel_shuffle"]
        kind = self.pick(kinds)
        if kind in MODERN or kind == "channel_shuffle":
            return self.modern(kind, shape), shape
        if kind == "bn":
            name = self.pick(["bn", "batchnorm"])
            args = [name]
            if self.chance(0.2):
                args.append("eps=1e-3")
            if self.chance(0.2):
                args.append("momentum=0.2")
            if self.chance(0.2):
                args.append("affine=false")
            return " ".join(args), shape
        if kind == "lrn":
            args = ["lrn"]
            if self.chance(0.7):
                args.append(str(self.int(1, 5)))
            if self.chance(0.2):
                args.append("alpha=1e-4 beta=0.75 k=2")
            return " ".join(args), shape
        if kind in ACTIVATION_NAMES:
            return self.pick([a for a in ACTIVATIONS if a.split()[0] == kind]), shape
        if kind == "scale":
            return ("scale bias=false" if self.chance(0.3) else "scale"), shape
        if kind == "dropout":
            return self.pick(["dropout", "dropout 0.5", "dropout 0.25", "dropout 0", "dropout p=0.1"]), shape
        return kind, shape

    def modern(self, kind, shape):
        """identity, drop_path, layerscale, prelu, layernorm, groupnorm or channel_shuffle, with arguments."""
        divisors = [g for g in (1, 2, 3, 4) if shape[0] % g == 0]
        return {
            "identity": "identity",
            "drop_path": f"drop_path {self.pick(['0', '0.1', '0.5'])}",
            "layerscale": self.pick(["layerscale", "layerscale init=0.5"]),
            "prelu": self.pick(["prelu", "prelu channels=true", "prelu init=0.1"]),
            "layernorm": self.pick(["layernorm", "layernorm eps=1e-6", "layernorm affine=false"]),
            "groupnorm": f"groupnorm {self.pick(divisors)}" + (" affine=false" if self.chance(0.2) else ""),
            "channel_shuffle": f"channel_shuffle groups={self.pick(divisors)}",
        }[kind]

    def layout(self, shape, mode):
        """channel_linear (any rank), channel_slice (free/grid modes) or upsample (free mode, small maps)."""
        c = shape[0]
        kinds = ["channel_linear"] + (["channel_slice"] if mode != "same" else [])
        if mode == "free" and len(shape) == 3 and shape[1] * shape[2] <= 64:
            kinds.append("upsample")
        kind = self.pick(kinds)
        if kind == "channel_linear":
            n = c if mode == "same" else self.int(1, 8)
            return f"channel_linear {n}" + (" bias=false" if self.chance(0.2) else ""), (n, *shape[1:])
        if kind == "channel_slice":
            start = self.int(0, c - 1)
            stop = self.int(start + 1, c)
            return f"channel_slice {start} {stop}", (stop - start, *shape[1:])
        k = (self.int(1, 2), self.int(1, 2))
        text = f"upsample {self.pair(k)}" + self.pick(["", " mode=bilinear", " mode=bilinear align_corners=true"])
        return text, (c, shape[1] * k[0], shape[2] * k[1])

    # ---- constructs
    def residual(self, shape, mode, depth):
        c, h, w = shape
        s = (1, 1)
        if mode == "free" and self.chance(0.5):
            sh = self.int(2, 3)
            s = (sh, sh) if self.chance(0.8) else (sh, self.int(1, 3))
        if self.chance(0.8):
            head, cur = self.conv(shape, stride=s, keep_grid=True, out=c if mode == "same" and self.chance(0.5) else None)
        else:
            head, cur = self.pool(shape, stride=s, keep_grid=True)
        units = [("item", head)]
        more, cur = self.body(cur, "grid", depth + 1, 0, 2)
        units += more
        if mode == "same" and cur[0] != c:
            fix, cur = self.conv(cur, keep_grid=True, out=c)
            units.append(("item", fix))
        assert cur[1:] == (cdiv(h, s[0]), cdiv(w, s[1]))
        options = ["project", "explicit"]
        if cur[0] >= c:
            options += ["zeropad", "zeropad"]
        if cur == shape:
            options += ["identity", "implicit"]
        kind = self.pick(options)
        body = self.render_body(units)
        tail = ""
        if kind == "explicit":
            sc = f"conv 1x1 {cur[0]} /{self.pair(s)} bias=false -> bn"
            body = body.rstrip("\n") + f"\n  shortcut {{ {sc} }}\n" if self.chance(0.5) else f"  shortcut {{\n{sc}\n}}\n" + body
        elif kind != "implicit":
            tail += f" shortcut={kind}"
        if self.chance(0.3):
            tail += f" scale={self.pick(['0.2', '0.5', '1', '2'])}"
        return f"residual {{\n{body}}}{tail}", cur

    def concat(self, shape, mode, depth):
        c, h, w = shape
        s = (1, 1)
        if mode == "free" and self.chance(0.4):
            s = self.pick([(2, 2), (2, 2), (3, 3), (1, 2), (2, 1)])
        n = self.int(2, 3)
        parts = None
        if mode == "same":
            n = min(n, c)
            cuts = sorted(self.draw(st.sets(st.integers(1, c - 1), min_size=n - 1, max_size=n - 1)))
            parts = [b - a for a, b in zip([0, *cuts], [*cuts, c])]
        lines, total, grid = [], 0, None
        for i in range(n):
            target = parts[i] if parts else None
            if s == (1, 1) and self.chance(0.25):
                head, cur = self.simple(shape)
            elif self.chance(0.75):
                out = target if target is not None and self.chance(0.5) else (None if c + 8 < MAX_C else self.int(1, 4))
                head, cur = self.conv(shape, stride=s, keep_grid=True, out=out)
            else:
                head, cur = self.pool(shape, stride=s, keep_grid=True)
            units = [("item", head)]
            more, cur = self.body(cur, "grid", depth + 1, 0, 1, chainable_only=True)
            units += more
            if target is not None and cur[0] != target:
                fix, cur = self.conv(cur, keep_grid=True, out=target)
                units.append(("item", fix))
            if self.chance(0.15):
                lines.append("branch {\n" + self.render_body(units) + "}")
            else:
                lines.append(self.render_chain([u[1] for u in units]))
            total += cur[0]
            grid = cur[1:] if grid is None else grid
            assert cur[1:] == grid == (cdiv(h, s[0]), cdiv(w, s[1]))
        return "concat {\n" + "\n".join(lines) + "\n}", (total, *grid)

    def highway(self, shape, depth):
        if len(shape) == 1:
            (n,) = shape
            h_units = [("item", f"fc {n}"), ("item", self.pick(["relu", "tanh"]))]
            gate_body = f"fc {n} -> sigmoid"
            bias_ok = True
        else:
            c = shape[0]
            h_units, cur = self.body(shape, "same", depth + 1, 1, 2)
            assert cur == shape
            # H must hold a layer: the units drawn may all elaborate to nothing (an `if` whose
            # taken branch is empty), and a highway without a transform is an error
            h_units.insert(self.int(0, len(h_units)), ("item", self.simple(shape)[0]))
            conv, cur = self.conv(shape, keep_grid=True, out=c)
            bias_ok = self.last_conv_bias
            gate_body = conv + (" -> bn" if self.chance(0.2) else "") + " -> sigmoid"
        gate_args = f" bias={self.pick(['-2', '-1', '0', '1.5', '(-3)'])}" if bias_ok and self.chance(0.6) else ""
        gate = f"gate{gate_args} {{ {gate_body} }}" if self.chance(0.5) else f"gate{gate_args} {{\n{gate_body}\n}}"
        pos = self.int(0, len(h_units))
        units = h_units[:pos] + [("stmt", gate)] + h_units[pos:]
        return "highway {\n" + self.render_body(units) + "}", shape

    def seq(self, shape, mode, depth):
        units, cur = self.body(shape, mode, depth + 1, 1, 3)
        return "seq {\n" + self.render_body(units) + "}", cur

    def repeat(self, shape, depth):
        """`repeat N { … }` around a shape-preserving body (labelled when the body holds labels);
        `repeat N as i` with the index in a condition."""
        units, cur = self.body(shape, "same", depth + 1, 1, 2)
        assert cur == shape
        n = self.int(1, 3)
        index = ""
        if self.chance(0.3):
            i = self.fresh("i")
            index = f" as {i}"
            units.append(("stmt", f"if {i} % 2 == {self.int(0, 1)} {{ {self.simple(shape)[0]} }}"))
        body = self.render_body(units)
        label = f"{self.fresh('r')}: " if re.search(r"\b[lr]\d+:", body) or self.chance(0.3) else ""
        return f"{label}repeat {n}{index} {{\n{body}}}", shape

    def conditional(self, shape, mode, depth):
        """`if COND { … } else { … }`: the branch not taken would not shape-check, and is not elaborated."""
        a, b = self.int(0, 9), self.int(0, 9)
        op = self.pick(["==", "!=", "<", "<=", ">", ">="])
        truth = {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        cond = f"{a} {op} {b}"
        if self.chance(0.3):
            cond, truth = f"not ({cond})", not truth
        if self.chance(0.3):
            other = self.chance(0.5)
            cond, truth = (f"{cond} and {str(other).lower()}", truth and other) if self.chance(0.5) \
                else (f"{cond} or {str(other).lower()}", truth or other)
        units, out = self.body(shape, mode, depth + 1, 0, 2)
        taken = self.render_body(units) if units else ""
        dead = self.pick(["conv 999x999 1", "@nowhere -> relu", "b_unknown(1)", "fc 0"])
        if truth:
            text = f"if {cond} {{\n{taken}}}" + (f" else {{ {dead} }}" if self.chance(0.7) else "")
        else:
            text = f"if {cond} {{ {dead} }} else {{\n{taken}}}"
        return text, out

    def block_call(self, shape, mode):
        """A call of one of BLOCKS (defined at the top of the program when used)."""
        c, h, w = shape
        options = ["b_conv", "b_res", "b_inc", "b_inc", "b_dense", "b_half", "b_cond", "b_kconv"] \
            if mode != "same" else ["b_res", "b_kconv", "b_cond"]  # b_inc, b_dense add channels
        name = self.pick(options)
        self.blocks.add(name)
        s = 1
        if mode == "free" and self.chance(0.4):
            s = self.int(2, 3)
        stride_arg = [] if s == 1 and self.chance(0.5) else [self.pick([f"stride={s}", f"stride = {s}"])]
        if name == "b_conv":
            width, k = self.int(1, 8), self.pick([1, 3, 5])
            args = [self.pick([str(width), f"width={width}"]), *stride_arg]
            if k != 3 or self.chance(0.2):
                args.append(f"k={k}")
            return f"b_conv({', '.join(args)})", (width, cdiv(h, s), cdiv(w, s))
        if name == "b_res":
            width = c if mode == "same" or self.chance(0.5) else self.int(1, 8)
            args = [str(width), *stride_arg]
            if (width, s) != (c, 1) or self.chance(0.3):
                sc = self.pick(["project", "zeropad"] if width >= c else ["project"])
                args.append(f"shortcut={sc}")
            return f"b_res({', '.join(args)})", (width, cdiv(h, s), cdiv(w, s))
        if name == "b_dense":
            g = self.int(1, 4)
            return f"b_dense({g})", (c + g, h, w)
        if name == "b_half":
            if self.chance(0.5):
                return "b_half", (max(c // 2, 1), h, w)
            k = self.int(1, 8)
            return f"b_half(out={k})", (k, h, w)
        if name == "b_cond":
            out = c if mode == "same" or self.chance(0.5) else self.int(1, 8)
            if mode == "same":
                s = 1
            return f"b_cond({out}, stride={s})", (out, cdiv(h, s), cdiv(w, s))
        if name == "b_kconv":
            kh, kw = self.pick([(1, 1), (3, 3), (1, 3), (3, 1), (5, 5)])
            return f"b_kconv({self.int(1, 8)}, k={kh}x{kw})", shape
        a, b = self.int(1, 4), self.int(1, 4)
        return f"b_inc({a}, b={b})", (a + b + c, h, w)

    def fork_join(self, shape):
        """`a = relu`, `b = @a -> conv …`, then `add @a @b`, `mul @a @b` or `concat @a @b`: explicit wiring."""
        a, b = self.fresh("a"), self.fresh("b")
        first, cur = self.simple(shape)
        out = shape[0] if self.chance(0.5) else self.int(1, 8)
        conv, side = self.conv(cur, keep_grid=True, out=out)
        lines = [f"{a} = {first}", f"{b} = @{a} -> {conv}"]
        if side == cur and self.chance(0.2):
            lines.append(f"mul @{a} @{b}")
            res = cur
        elif side == cur:
            lines.append(f"add @{a} @{b}" + (" scale=0.5" if self.chance(0.3) else ""))
            res = cur
        else:
            lines.append(f"concat @{a} @{b}")
            res = (cur[0] + side[0], *cur[1:])
        if self.chance(0.4):
            lines.append(f"output @{b}")
            self.outputs = True
        return "\n".join(lines), res

    # ---- bodies
    def item(self, shape, mode, depth, chainable_only=False):
        """One unit: ('item', text) can be chained with `->`; ('stmt', text) stands alone."""
        flat = len(shape) == 1
        if flat:
            kinds = ["simple", "simple", "fc", "layout"]
            if mode == "free":
                kinds += ["fc", "rbf"]
            if depth < 2:
                kinds += ["highway", "residual_flat"]
        else:
            kinds = ["conv", "conv", "conv", "simple", "simple", "layout"]
            if mode != "same":
                kinds += ["pool"]
            if depth < 2:
                kinds += ["residual", "highway", "seq", "repeat", "block"]
                if not chainable_only:
                    kinds.append("if")
                if mode != "same" or shape[0] >= 2:
                    kinds.append("concat")
                if not chainable_only and depth == 0:
                    kinds.append("fork")
        kind = self.pick(kinds)
        if kind == "conv":
            if mode == "free":
                text, out = self.conv(shape)
            else:
                text, out = self.conv(shape, keep_grid=True, out=shape[0] if mode == "same" else None)
        elif kind == "pool":
            text, out = self.pool(shape, keep_grid=mode != "free")
        elif kind == "simple":
            text, out = self.simple(shape)
        elif kind == "layout":
            text, out = self.layout(shape, mode)
        elif kind == "fc":
            n = shape[0] if mode != "free" else self.int(1, 16)
            text, out = f"{self.pick(['fc', 'linear'])} {n}", (n,)
            if self.chance(0.2):
                text += " bias=false"
        elif kind == "residual":
            text, out = self.residual(shape, mode, depth)
        elif kind == "rbf":
            n = self.int(1, 10)
            text, out = f"rbf {n}", (n,)
        elif kind == "residual_flat":
            n = shape[0]
            text, out = f"residual {{ fc {n} -> relu -> fc {n} }}", shape
        elif kind == "highway":
            text, out = self.highway(shape, depth)
        elif kind == "concat":
            text, out = self.concat(shape, mode, depth)
        elif kind == "seq":
            text, out = self.seq(shape, mode, depth)
        elif kind == "repeat":
            text, out = self.repeat(shape, depth)
        elif kind == "block":
            text, out = self.block_call(shape, mode)
        elif kind == "if":
            text, out = self.conditional(shape, mode, depth)
            return ("stmt", text), out
        else:
            text, out = self.fork_join(shape)
            return ("stmt", text), out
        if self.chance(0.1) and not re.match(r"r\d+: ", text):
            text = f"{self.fresh('l')}: {text}"
        # A label inside a body repeated with `xN` is defined once per copy ("used twice") unless the
        # repeated item is labelled itself, which gives each copy a scope (but a labelled `repeat N`
        # then loses its own label to the copies, and its N inner copies share one scope).
        leading = re.match(r"[lr]\d+: ", text)
        inner = re.search(r"\b[lr]\d+:", text[leading.end():] if leading else text)
        if out == shape and self.chance(0.08) and (not inner or (leading and kind != "repeat")):
            text += f" x{self.int(2, 3)}"
        return ("item", text), out

    def body(self, shape, mode, depth, lo, hi, chainable_only=False):
        units = []
        for _ in range(self.int(lo, hi)):
            unit, shape = self.item(shape, mode, depth, chainable_only)
            units.append(unit)
        return units, shape

    def render_chain(self, items: list[str]) -> str:
        out = items[0]
        for it in items[1:]:
            out += self.pick([" -> ", " -> ", " -> ", " ->\n    ", " -> # then\n    ", "->"]) + it
        return out

    def render_body(self, units) -> str:
        """Group consecutive items into `->` chains; each chain or statement on its own line."""
        lines: list[tuple[bool, str]] = []  # (is a chain, text)
        chain: list[str] = []
        for kind, text in units:
            if kind == "item":
                if chain and self.chance(0.5):
                    lines.append((True, self.render_chain(chain)))
                    chain = []
                chain.append(text)
            else:
                if chain:
                    lines.append((True, self.render_chain(chain)))
                    chain = []
                lines.append((False, text))
        if chain:
            lines.append((True, self.render_chain(chain)))
        out = ""
        for is_chain, line in lines:
            if is_chain and self.chance(0.1):  # bind the chain's value to a name nobody reads
                line = f"{self.fresh('v')} = {line}"
            out += self.pick(["  ", "\t", ""]) + line + self.pick(["\n", "\n", "\n", "  # note\n", "\n\n"])
        return out

    # ---- a whole program
    def network(self) -> tuple[str, dict | None]:
        self.outputs = False
        self.blocks: set[str] = set()
        units = []
        params, overrides = "", None
        n_classes = self.int(1, 12)
        classes = str(n_classes)
        if self.chance(0.3):
            params = f"(classes = {classes})"
            if self.chance(0.5):
                n_classes = self.int(1, 12)
                overrides = {"classes": n_classes}
            classes = "classes"
        if self.chance(0.05):  # a flat input: a small MLP
            shape = (self.int(1, 16),)
            head = f"input {shape[0]}"
        else:
            shape = (self.int(1, 8), self.int(8, 40), self.int(8, 40))
            head = self.pick([f"input {shape[0]}x{shape[1]}x{shape[2]}", f"input ({shape[0]}, {shape[1]}, {shape[2]})",
                              f"x = input {shape[0]}x{shape[1]}x{shape[2]}"])
            if self.chance(0.1):  # a second input on the same grid, joined to the first
                c2 = self.int(1, 4)
                head = f"x = input {shape[0]}x{shape[1]}x{shape[2]}\n  y = input {c2}x{shape[1]}x{shape[2]}\n  concat @x @y"
                shape = (shape[0] + c2, *shape[1:])
        more, shape = self.body(shape, "free", 0, 1, 6)
        units += more
        if len(shape) == 3:
            tail = self.pick(["none", "gap", "flatten", "fc"])
            if tail == "gap":
                units.append(("item", f"{self.pick(['avgpool', 'maxpool'])} global"))
                units.append(("item", f"fc {classes}"))
            elif tail == "flatten":
                units += [("item", "flatten"), ("item", f"fc {classes}"), ("item", "softmax")]
            elif tail == "fc":
                units.append(("item", f"fc {classes}"))
            if tail != "none":
                more, _ = self.body((n_classes,), "same", 1, 0, 2)
                units += more
                if self.chance(0.15):  # LeNet's Euclidean RBF output units
                    units.append(("item", f"rbf {self.int(1, 10)}"))
        else:
            more, _ = self.body(shape, "free", 0, 0, 3)
            units += more
        if self.outputs:
            units.append(("stmt", "output"))
        body = self.render_body(units)
        blocks = "".join(BLOCKS[b] for b in sorted(self.blocks))
        text = f"# generated\n{blocks}network g{params} {{\n  {head}\n" + body + "}\n"
        if self.chance(0.05):
            text = text.replace("\n", "\r\n")
        return text, overrides


@st.composite
def networks(draw):
    return Gen(draw).network()
