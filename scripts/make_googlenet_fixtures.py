#!/usr/bin/env python3
"""Make the GoogLeNet fixtures: reference outputs of the ORIGINAL GoogLeNet in PyTorch.

"Going deeper with convolutions" (Szegedy et al. 2014) as Caffe's bvlc_googlenet builds it, which
is our ``GoogLeNet.paper`` (Sources/InceptionModels/GoogLeNet.swift). torchvision has no such model
(its googlenet has batch norm and 3x3 convolutions in Branch_2), so the network is written out
below in plain torch.nn, NCHW:

* Root: Conv2d_1a_7x7 (3->64, 7x7, stride 2, pad 3) -> MaxPool_2a_3x3 (3, stride 2, ceil mode)
  -> LRN_2a -> Conv2d_2b_1x1 (64->64) -> Conv2d_2c_3x3 (64->192, pad 1) -> LRN_2d
  -> MaxPool_3a_3x3 (3, stride 2, ceil mode).
  LRN is ``torch.nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1)``, i.e.
  ``b_c = a_c / (k + alpha/size * sum_{c'=c-2..c+2} a_c'^2) ** beta`` with zeros outside the
  channels: torch divides alpha by the window size (it averages the squares with avg_pool3d over
  a zero-padded window, count_include_pad), exactly as Caffe's LRN layer and our
  ``LocalResponseNorm`` do (TensorFlow's tf.nn.lrn does not). The script checks this against the
  explicit formula in float64.
* Inception modules Mixed_3b, Mixed_3c, MaxPool_4a_3x3, Mixed_4b..Mixed_4f, MaxPool_5a_3x3,
  Mixed_5b, Mixed_5c (the paper's Table 1 channels): Branch_0 1x1; Branch_1 1x1 -> 3x3 pad 1;
  Branch_2 1x1 -> 5x5 pad 2; Branch_3 3x3 max pool (stride 1, pad 1, ceil mode) -> 1x1;
  concatenated in branch order. Every convolution has biases and a ReLU; no batch norm.
  The three stride-2 pools between stages are 3x3 with ceil mode.
* Head: AvgPool_0a_7x7 (7x7, stride 1, no padding) -> dropout 0.4 -> Logits, a 1x1 convolution
  1024 -> classes with biases (the paper's fully connected layer, as our model stores it),
  flattened to [N, classes].
* Auxiliary heads (training only) AuxLogits_4b on Mixed_4b (512 ch) and AuxLogits_4e on Mixed_4e
  (528 ch): AvgPool_1a_5x5 (5x5, stride 3, no padding; 14x14 -> 4x4) -> Conv2d_1b_1x1 (->128,
  ReLU) -> Conv2d_2a_4x4, the paper's fully connected 2048 -> 1024 + ReLU written as a 4x4 VALID
  convolution so that its weights are our [4, 4, 128, 1024] (HWIO), i.e. the 4x4x128 grid is
  flattened in H, W, C order (the script checks that against an explicit Linear on the NHWC
  flattening; note Caffe's own InnerProduct flattens C, H, W, which matters only when porting
  Caffe weights) -> dropout 0.7 -> Conv2d_2b_1x1 (1x1 conv 1024 -> classes with biases).
* Classes: 10, to keep the fixtures small (the classifier weights are then tiny); the parameter
  counts for 1000 classes are in variables.json.

Weights: every variable is named and shaped as OUR model names and shapes it (scope
``GoogLeNet/``, conv weights HWIO [KH, KW, CI, CO], biases [CO]) and filled with the pattern of
docs/parity-fixtures.md (``pattern_value`` of scripts/make_parity_fixtures.py): seed = FNV-1a-32
of our full variable name, element index in our row-major shape, ``weights`` v*sqrt(6/(KH*KW*CI)),
``biases`` 0.1*v; float64 maths, one rounding to float32. Convolution weights are then transposed
HWIO -> OIHW for torch. The input is the pattern named ``input`` made in NHWC order [N, H, W, 3]
(the same array as the other fixtures' input of that shape), transposed to NCHW.

Cases (Tests/InceptionTests/Fixtures/googlenet/CASE/, manifest.json + float32 .npy samples):

    eval_224   eval mode, input [2, 224, 224, 3]: every base endpoint, AvgPool_0a_7x7 and Logits
    train_224  the training forward (both auxiliary heads, every dropout at p = 0; with no batch
               norm this is the eval forward plus the aux heads), labels [3, 7]:
               Logits, AuxLogits_4b, AuxLogits_4e, the loss
               CE(Logits) + 0.3 * (CE(AuxLogits_4b) + CE(AuxLogits_4e)) (each CE the mean over
               the batch) and each term, and the gradients of a few of our variables in OUR
               layout (HWIO / [C]), each file named by the variable name with '/' -> '__'

4-D endpoints are stored NHWC (torch's NCHW transposed), so sample indices refer to NHWC
row-major order; logits stay [N, classes]. Sampling (docs/parity-fixtures.md): all elements if
there are at most 4096, else 0..<512, n-512..<n, then (j * 2147483647) mod n for j in 0..<3072.
Every entry also records how far float32 is from a float64 run of the same model (same float32
weights and input): ``float64_max_abs_diff`` and ``float64_rel_l2_diff``, a guide for
tolerances. ``variables.json`` lists every variable in our order (base in network order, then
Logits, then AuxLogits_4b, AuxLogits_4e) with our shape, the float64 sum and first four values of
its pattern, and the parameter counts with and without the aux heads (10 classes as built, and
1000 classes computed arithmetically and cross-checked with a 1000-class torch build).

Requirements: torch (CPU; made with 2.13.0) and numpy; no torchvision, no TensorFlow (importing
make_parity_fixtures only sets two TF_* environment defaults). Run it from the repository root
(it is rerunnable; it replaces what it wrote before)::

    python3 scripts/make_googlenet_fixtures.py [--out DIR]
"""

import argparse
import copy
import math
import os
import sys
from collections import OrderedDict

import numpy as np

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(SCRIPT_DIR)
DEFAULT_OUT = os.path.join(REPO_ROOT, "Tests", "InceptionTests", "Fixtures", "googlenet")

# The pattern, the sampling rule and the small output helpers are shared with the parity script.
sys.path.insert(0, SCRIPT_DIR)
from make_parity_fixtures import (  # noqa: E402
    du, exact_sum, fresh_dir, pattern_input, pattern_value, sample_indices, write_json)

# The output helpers of the torchvision fixture script (importing it loads torch, not torchvision).
from make_torchvision_fixtures import float64_gap, save_samples, to_nhwc  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SCOPE = "GoogLeNet"
NUM_CLASSES = 10
MAIN_DROPOUT = 0.4  # the paper's (keep probability 0.6)
AUX_DROPOUT = 0.7   # the paper's (keep probability 0.3)
AUX_WEIGHT = 0.3
LRN_ARGS = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)

# The paper's Table 1 (= slim's): name, Branch_0, (Branch_1 reduce, out), (Branch_2 reduce, out),
# Branch_3; None marks the 3x3 stride-2 ceil-mode max pool between stages.
INCEPTION_TABLE = [
    ("Mixed_3b", 64, (96, 128), (16, 32), 32),
    ("Mixed_3c", 128, (128, 192), (32, 96), 64),
    ("MaxPool_4a_3x3", None, None, None, None),
    ("Mixed_4b", 192, (96, 208), (16, 48), 64),
    ("Mixed_4c", 160, (112, 224), (24, 64), 64),
    ("Mixed_4d", 128, (128, 256), (24, 64), 64),
    ("Mixed_4e", 112, (144, 288), (32, 64), 64),
    ("Mixed_4f", 256, (160, 320), (32, 128), 128),
    ("MaxPool_5a_3x3", None, None, None, None),
    ("Mixed_5b", 256, (160, 320), (32, 128), 128),
    ("Mixed_5c", 384, (192, 384), (48, 128), 128),
]
AUX_HEADS = [("AuxLogits_4b", "Mixed_4b"), ("AuxLogits_4e", "Mixed_4e")]

# The paper's Table 1 output sizes at 224x224 (H = W, channels), checked in eval_224.
TABLE1_224 = OrderedDict([
    ("Conv2d_1a_7x7", (112, 64)), ("MaxPool_2a_3x3", (56, 64)), ("LRN_2a", (56, 64)),
    ("Conv2d_2b_1x1", (56, 64)), ("Conv2d_2c_3x3", (56, 192)), ("LRN_2d", (56, 192)),
    ("MaxPool_3a_3x3", (28, 192)), ("Mixed_3b", (28, 256)), ("Mixed_3c", (28, 480)),
    ("MaxPool_4a_3x3", (14, 480)), ("Mixed_4b", (14, 512)), ("Mixed_4c", (14, 512)),
    ("Mixed_4d", (14, 512)), ("Mixed_4e", (14, 528)), ("Mixed_4f", (14, 832)),
    ("MaxPool_5a_3x3", (7, 832)), ("Mixed_5b", (7, 832)), ("Mixed_5c", (7, 1024)),
    ("AvgPool_0a_7x7", (1, 1024)),
])

EVAL_CASE = dict(name="eval_224", batch=2, height=224, width=224)
TRAIN_CASE = dict(name="train_224", batch=2, height=224, width=224, labels=[3, 7])
# Gradients stored by train_224, by OUR variable name.
GRAD_NAMES = [
    "GoogLeNet/Conv2d_1a_7x7/weights",
    "GoogLeNet/Conv2d_1a_7x7/biases",
    "GoogLeNet/Conv2d_2c_3x3/weights",
    "GoogLeNet/Mixed_3b/Branch_2/Conv2d_0b_5x5/weights",
    "GoogLeNet/Mixed_4e/Branch_3/Conv2d_0b_1x1/biases",
    "GoogLeNet/Mixed_5c/Branch_1/Conv2d_0b_3x3/weights",
    "GoogLeNet/Logits/Conv2d_0c_1x1/weights",
    "GoogLeNet/Logits/Conv2d_0c_1x1/biases",
    "GoogLeNet/AuxLogits_4b/Conv2d_1b_1x1/weights",
    "GoogLeNet/AuxLogits_4b/Conv2d_2a_4x4/weights",
    "GoogLeNet/AuxLogits_4b/Conv2d_2a_4x4/biases",
    "GoogLeNet/AuxLogits_4e/Conv2d_2b_1x1/weights",
    "GoogLeNet/AuxLogits_4e/Conv2d_2b_1x1/biases",
]

SAMPLING = "all if n <= 4096; else 0..<512, n-512..<n, (j*2147483647) mod n for j in 0..<3072"


# ---------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------
class ConvReLU(nn.Module):
    """Convolution with biases, then ReLU unless it is a classifier (`relu=False`)."""

    def __init__(self, path, cin, cout, kernel, stride=1, padding=0, relu=True):
        super().__init__()
        self.path = path  # our scope, e.g. GoogLeNet/Mixed_3b/Branch_1/Conv2d_0b_3x3
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)
        self.relu = relu

    def forward(self, x):
        x = self.conv(x)
        return F.relu(x) if self.relu else x


def ceil_max_pool(kernel, stride, padding=0):
    """Caffe's max pooling: output size ceil((H + 2p - k) / s) + 1 (torch's ceil_mode)."""
    return nn.MaxPool2d(kernel, stride=stride, padding=padding, ceil_mode=True)


class Mixed(nn.Module):
    """An Inception module with the paper's 5x5 Branch_2; branches concatenated in order."""

    def __init__(self, path, cin, b0, b1, b2, b3):
        super().__init__()
        self.branch_0 = ConvReLU(path + "/Branch_0/Conv2d_0a_1x1", cin, b0, 1)
        self.branch_1 = nn.Sequential(
            ConvReLU(path + "/Branch_1/Conv2d_0a_1x1", cin, b1[0], 1),
            ConvReLU(path + "/Branch_1/Conv2d_0b_3x3", b1[0], b1[1], 3, padding=1))
        self.branch_2 = nn.Sequential(
            ConvReLU(path + "/Branch_2/Conv2d_0a_1x1", cin, b2[0], 1),
            ConvReLU(path + "/Branch_2/Conv2d_0b_5x5", b2[0], b2[1], 5, padding=2))
        self.branch_3 = nn.Sequential(
            ceil_max_pool(3, 1, padding=1),  # Branch_3/MaxPool_0a_3x3: no variables
            ConvReLU(path + "/Branch_3/Conv2d_0b_1x1", cin, b3, 1))
        self.channels = b0 + b1[1] + b2[1] + b3

    def convs(self):
        """Our variable order inside the module: Branch_0, Branch_1, Branch_2, Branch_3."""
        return [self.branch_0, *self.branch_1, *self.branch_2, self.branch_3[1]]

    def forward(self, x):
        return torch.cat([self.branch_0(x), self.branch_1(x), self.branch_2(x), self.branch_3(x)], 1)


class AuxHead(nn.Module):
    """AvgPool_1a_5x5 -> Conv2d_1b_1x1 -> Conv2d_2a_4x4 (the FC 2048 -> 1024 as a 4x4 VALID conv)
    -> dropout -> Conv2d_2b_1x1 (logits); returns [N, classes]."""

    def __init__(self, path, cin, classes):
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)  # no padding; 14x14 -> 4x4 (exact, no ceil question)
        self.conv_1b = ConvReLU(path + "/Conv2d_1b_1x1", cin, 128, 1)
        self.conv_2a = ConvReLU(path + "/Conv2d_2a_4x4", 128, 1024, 4)
        self.dropout = nn.Dropout(p=AUX_DROPOUT)
        self.logits = ConvReLU(path + "/Conv2d_2b_1x1", 1024, classes, 1, relu=False)

    def convs(self):
        return [self.conv_1b, self.conv_2a, self.logits]

    def forward(self, x):
        x = self.conv_2a(self.conv_1b(self.pool(x)))
        return torch.flatten(self.logits(self.dropout(x)), 1)


class PaperGoogLeNet(nn.Module):
    """The paper's GoogLeNet; `forward` returns an OrderedDict of our endpoints."""

    def __init__(self, classes=NUM_CLASSES):
        super().__init__()
        s = SCOPE + "/"
        base = OrderedDict()
        base["Conv2d_1a_7x7"] = ConvReLU(s + "Conv2d_1a_7x7", 3, 64, 7, stride=2, padding=3)
        base["MaxPool_2a_3x3"] = ceil_max_pool(3, 2)
        base["LRN_2a"] = nn.LocalResponseNorm(**LRN_ARGS)
        base["Conv2d_2b_1x1"] = ConvReLU(s + "Conv2d_2b_1x1", 64, 64, 1)
        base["Conv2d_2c_3x3"] = ConvReLU(s + "Conv2d_2c_3x3", 64, 192, 3, padding=1)
        base["LRN_2d"] = nn.LocalResponseNorm(**LRN_ARGS)
        base["MaxPool_3a_3x3"] = ceil_max_pool(3, 2)
        channels = 192
        for name, b0, b1, b2, b3 in INCEPTION_TABLE:
            if b0 is None:
                base[name] = ceil_max_pool(3, 2)
            else:
                base[name] = Mixed(s + name, channels, b0, b1, b2, b3)
                channels = base[name].channels
        self.base = nn.ModuleDict(base)
        self.avg_pool = nn.AvgPool2d(7, stride=1)  # AvgPool_0a_7x7, no padding
        self.dropout = nn.Dropout(p=MAIN_DROPOUT)
        self.logits = ConvReLU(s + "Logits/Conv2d_0c_1x1", channels, classes, 1, relu=False)
        self.aux = nn.ModuleDict(
            (name, AuxHead(s + name, base[endpoint].channels, classes)) for name, endpoint in AUX_HEADS)

    def convs(self):
        """Every convolution in OUR variable order: base in network order, Logits, aux heads."""
        out = []
        for module in self.base.values():
            if isinstance(module, ConvReLU):
                out.append(module)
            elif isinstance(module, Mixed):
                out.extend(module.convs())
        out.append(self.logits)
        for head in self.aux.values():
            out.extend(head.convs())
        return out

    def forward(self, x, aux=False):
        endpoints = OrderedDict()
        for name, module in self.base.items():
            x = module(x)
            endpoints[name] = x
        x = self.avg_pool(x)
        endpoints["AvgPool_0a_7x7"] = x
        endpoints["Logits"] = torch.flatten(self.logits(self.dropout(x)), 1)
        if aux:
            for name, endpoint in AUX_HEADS:
                endpoints[name] = self.aux[name](endpoints[endpoint])
        return endpoints


# ---------------------------------------------------------------------------
# Our variables and the pattern
# ---------------------------------------------------------------------------
def variable_specs(model):
    """[(our name, our shape, torch parameter)] in our order; conv weights HWIO."""
    specs = []
    for m in model.convs():
        o, i, kh, kw = m.conv.weight.shape
        specs.append((m.path + "/weights", (kh, kw, i, o), m.conv.weight))
        specs.append((m.path + "/biases", (o,), m.conv.bias))
    return specs


def to_torch_layout(value):
    """Ours -> torch: HWIO -> OIHW for weights, biases unchanged."""
    return value.transpose(3, 2, 0, 1) if value.ndim == 4 else value


def to_our_layout(value):
    """Torch -> ours: OIHW -> HWIO for weights, biases unchanged."""
    return value.transpose(2, 3, 1, 0) if value.ndim == 4 else value


def pattern_values(model):
    """Our name -> float32 pattern in our shape, in our order."""
    return OrderedDict((name, pattern_value(name, shape)) for name, shape, _ in variable_specs(model))


def make_model(values):
    """A fresh float32 model holding the pattern (read back to check)."""
    model = PaperGoogLeNet(NUM_CLASSES)
    specs = variable_specs(model)
    if [n for n, _, _ in specs] != list(values):
        raise AssertionError("variable order changed")
    with torch.no_grad():
        for name, shape, param in specs:
            param.copy_(torch.from_numpy(np.ascontiguousarray(to_torch_layout(values[name]))))
    for name, _, param in specs:
        if not np.array_equal(to_our_layout(param.detach().numpy()), values[name]):
            raise AssertionError("%s did not take the pattern" % name)
    names = set(n for n, _, _ in specs)
    if len(names) != len(specs) or len(specs) != len(list(model.parameters())):
        raise AssertionError("every torch parameter must be exactly one of our variables")
    return model


def input_batch(case):
    """The pattern input: generated NHWC, returned as (nhwc float32, NCHW torch tensor)."""
    nhwc = pattern_input([case["batch"], case["height"], case["width"], 3])
    return nhwc, torch.from_numpy(np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)))


# ---------------------------------------------------------------------------
# Checks of the conventions stated in the docstring
# ---------------------------------------------------------------------------
def check_lrn(x):
    """torch's LRN on x (NCHW) against Caffe's formula with alpha / size, in float64."""
    size, alpha, beta, k = (LRN_ARGS[key] for key in ("size", "alpha", "beta", "k"))
    a = x.double()
    sq = F.pad(a * a, (0, 0, 0, 0, size // 2, size // 2))  # zero channels on both sides
    window = sum(sq[:, j:j + a.shape[1]] for j in range(size))
    want = a / (k + alpha / size * window) ** beta
    got = nn.LocalResponseNorm(**LRN_ARGS)(a)
    gap = float((got - want).abs().max())
    if gap > 1e-12 * max(1.0, float(want.abs().max())):
        raise AssertionError("torch LRN is not Caffe's alpha/size formula (gap %g)" % gap)
    # ... and not TensorFlow's (alpha NOT divided by size): that would differ visibly here.
    tf_style = a / (k + alpha * window) ** beta
    return gap, float((got - tf_style).abs().max())


def check_aux_fc(model, x):
    """Conv2d_2a_4x4 as a 4x4 conv == a Linear on the 4x4x128 grid flattened in H, W, C order
    with our HWIO weights reshaped to [2048, 1024]."""
    head = copy.deepcopy(model.aux["AuxLogits_4b"]).double()  # a copy: .double() is in place
    with torch.no_grad():
        grid = head.conv_1b(head.pool(x.double()))              # [N, 128, 4, 4]
        conv = head.conv_2a.conv
        via_conv = F.relu(conv(grid)).flatten(1)
        hwio = conv.weight.permute(2, 3, 1, 0).reshape(4 * 4 * 128, 1024)
        via_fc = F.relu(grid.permute(0, 2, 3, 1).reshape(grid.shape[0], -1) @ hwio + conv.bias)
    gap = float((via_conv - via_fc).abs().max())
    if gap > 1e-9 * max(1.0, float(via_fc.abs().max())):
        raise AssertionError("the 4x4 conv is not the NHWC-flattened FC (gap %g)" % gap)
    return gap


def floor_mode_sizes(h):
    """What the four stride-2 3x3 pools would give WITHOUT ceil mode (for the manifest's notes)."""
    h = (h + 2 * 3 - 7) // 2 + 1  # Conv2d_1a_7x7
    sizes = []
    for _ in range(4):
        h = (h - 3) // 2 + 1
        sizes.append(h)
    return sizes


# ---------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------
def generator_info():
    return {"script": "scripts/make_googlenet_fixtures.py",
            "torch": torch.__version__,
            "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(),
            "model": "the paper's GoogLeNet (Caffe bvlc_googlenet) in plain torch.nn, "
                     "%d classes, see the script's docstring" % NUM_CLASSES,
            "pattern": "docs/parity-fixtures.md on OUR variable names and shapes (HWIO), "
                       "transposed to OIHW for torch"}


COMMON_NOTES = [
    "4-D endpoints are stored in NHWC (torch's NCHW output transposed); the sample indices "
    "refer to NHWC row-major order. Logits stay [N, classes].",
    "Classes: %d (keeps the fixtures small); the classifier weights are [1, 1, 1024, %d]."
    % (NUM_CLASSES, NUM_CLASSES),
    "LRN: torch.nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1) = "
    "a / (1 + 1e-4/5 * sum of squares over channels c-2..c+2, zero outside) ** 0.75 "
    "(alpha divided by size, like Caffe; checked against the formula in float64).",
    "All max pools use ceil mode (Caffe). The 3x3 stride-2 pools give 112->56->28->14->7 at 224; "
    "floor mode would give %s." % "->".join(str(h) for h in [112] + floor_mode_sizes(224)),
    "float64_max_abs_diff / float64_rel_l2_diff: max |float32 - float64| and "
    "||float32 - float64|| / ||float64|| over the full tensor; the float64 run uses the same "
    "(float32) weights and input. A guide for tolerances.",
]


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------
def run_eval_case(values, case, out_dir, summary):
    model = make_model(values).eval()
    model64 = copy.deepcopy(model).double()
    nhwc, x = input_batch(case)
    with torch.no_grad():
        outs = model(x)
        outs64 = model64(x.double())

    # The conventions, checked on this very run.
    lrn_gap, lrn_vs_tf = check_lrn(outs["MaxPool_2a_3x3"])
    fc_gap = check_aux_fc(model, outs["Mixed_4b"])
    for name, (hw, c) in TABLE1_224.items():
        want = (case["batch"], c, hw, hw)
        if tuple(outs[name].shape) != want:
            raise AssertionError("%s: %s, Table 1 says %s" % (name, tuple(outs[name].shape), want))

    case_dir = os.path.join(out_dir, case["name"])
    fresh_dir(case_dir)
    entries = []
    for name, t in outs.items():
        out = to_nhwc(t)
        max_abs, count = save_samples(os.path.join(case_dir, name + ".npy"), out)
        diff64, rel64 = float64_gap(out, to_nhwc(outs64[name]))
        entries.append({"name": name, "shape": list(out.shape),
                        "layout": "NHWC" if out.ndim == 4 else "NC",
                        "elements": int(out.size), "max_abs": max_abs, "samples": count,
                        "float64_max_abs_diff": diff64, "float64_rel_l2_diff": rel64,
                        "file": name + ".npy"})
        summary.append((case["name"], name, out.shape, max_abs, diff64, rel64))

    write_json(os.path.join(case_dir, "manifest.json"), {
        "case": case["name"],
        "arguments": dict(architecture="googlenet", mode="eval", num_classes=NUM_CLASSES,
                          batch=case["batch"], height=case["height"], width=case["width"]),
        "input_name": "input",
        "input_shape": list(nhwc.shape),
        "input_layout": "NHWC (transposed to NCHW for torch)",
        "input_sum": exact_sum(nhwc),
        "sampling": SAMPLING,
        "checks": {"lrn_max_abs_gap_to_caffe_formula_float64": lrn_gap,
                   "lrn_max_abs_gap_to_tf_formula_float64": lrn_vs_tf,
                   "aux_fc_conv_vs_nhwc_linear_max_abs_gap_float64": fc_gap},
        "notes": COMMON_NOTES + [
            "eval mode: dropout off, auxiliary heads not run. AvgPool_0a_7x7 is [N, 1, 1, 1024] "
            "(7x7 average pool, stride 1, no padding); Logits is its 1x1 convolution flattened."],
        "generator": generator_info(),
        "endpoints": entries,
    })
    return model, outs


def run_train_case(values, case, out_dir, summary, eval_logits):
    def forward_backward(model, x):
        model.train()
        # Dropout off: the main head's and each aux head's (no batch norm, so that is all
        # training mode would change).
        model.dropout.p = 0.0
        for head in model.aux.values():
            head.dropout.p = 0.0
        outs = model(x, aux=True)
        labels = torch.tensor(case["labels"], dtype=torch.int64)
        ce = OrderedDict((name, F.cross_entropy(outs[name], labels))
                         for name in ["Logits", "AuxLogits_4b", "AuxLogits_4e"])
        loss = ce["Logits"] + AUX_WEIGHT * (ce["AuxLogits_4b"] + ce["AuxLogits_4e"])
        model.zero_grad(set_to_none=True)
        loss.backward()
        params = {name: p for name, _, p in variable_specs(model)}
        grads = {name: to_our_layout(params[name].grad.detach().numpy().copy()) for name in GRAD_NAMES}
        outputs = {name: outs[name].detach().clone() for name in ce}
        losses = OrderedDict([("loss", loss)] + [("ce_" + name, v) for name, v in ce.items()])
        return outputs, {k: float(v.item()) for k, v in losses.items()}, grads

    model = make_model(values)
    model64 = copy.deepcopy(model).double()
    nhwc, x = input_batch(case)
    outputs, losses, grads = forward_backward(model, x)
    outputs64, losses64, grads64 = forward_backward(model64, x.double())
    # With no batch norm and dropout at 0, the training forward's Logits are the eval ones.
    train_vs_eval = float((outputs["Logits"] - eval_logits).abs().max())

    case_dir = os.path.join(out_dir, case["name"])
    fresh_dir(case_dir)
    output_entries = []
    for name, t in outputs.items():
        out = to_nhwc(t)
        max_abs, count = save_samples(os.path.join(case_dir, name + ".npy"), out)
        diff64, rel64 = float64_gap(out, to_nhwc(outputs64[name]))
        output_entries.append({"name": name, "shape": list(out.shape), "layout": "NC",
                               "elements": int(out.size), "max_abs": max_abs, "samples": count,
                               "float64_max_abs_diff": diff64, "float64_rel_l2_diff": rel64,
                               "file": name + ".npy"})
        summary.append((case["name"], name, out.shape, max_abs, diff64, rel64))

    grad_entries = []
    for name in GRAD_NAMES:
        g = grads[name]
        file = name.replace("/", "__") + ".npy"
        max_abs, count = save_samples(os.path.join(case_dir, file), g)
        diff64, rel64 = float64_gap(g, grads64[name])
        grad_entries.append({"name": name, "shape": list(g.shape),
                             "layout": "HWIO" if g.ndim == 4 else "C",
                             "elements": int(g.size), "max_abs": max_abs, "samples": count,
                             "float64_max_abs_diff": diff64, "float64_rel_l2_diff": rel64,
                             "file": file})
        summary.append((case["name"], "grad " + name, g.shape, max_abs, diff64, rel64))

    write_json(os.path.join(case_dir, "manifest.json"), {
        "case": case["name"],
        "arguments": dict(architecture="googlenet", mode="train", num_classes=NUM_CLASSES,
                          batch=case["batch"], height=case["height"], width=case["width"],
                          labels=case["labels"], aux_weight=AUX_WEIGHT,
                          dropout_p={"main (paper 0.4)": 0.0, "aux (paper 0.7)": 0.0},
                          loss="CE(Logits) + %g * (CE(AuxLogits_4b) + CE(AuxLogits_4e)), each CE "
                               "the mean over the batch" % AUX_WEIGHT),
        "input_name": "input",
        "input_shape": list(nhwc.shape),
        "input_layout": "NHWC (transposed to NCHW for torch)",
        "input_sum": exact_sum(nhwc),
        "sampling": SAMPLING,
        "losses": losses,
        "losses_float64": losses64,
        "checks": {"train_logits_vs_eval_logits_max_abs": train_vs_eval},
        "outputs": output_entries,
        "gradients": grad_entries,
        "notes": COMMON_NOTES + [
            "Training forward with both auxiliary heads and every dropout at p = 0; with no "
            "batch norm it equals the eval forward plus the aux heads.",
            "Gradients of one backward pass of the loss (grads zeroed before), in OUR layout "
            "(conv weights HWIO, biases [C]), files named by our variable name with '/' -> '__'.",
            "Conditioning: the forward is well conditioned (float64_rel_l2_diff ~1e-6 at every "
            "endpoint), but round-off flips a few discrete choices (at generation: 2 ReLU signs, "
            "1 argmax of MaxPool_3a_3x3 and 9 of the Inception modules' Branch_3 pools, out of "
            "millions), and the backward routes gradient through them. So the stored gradients of "
            "the stem and Mixed_3b are reproducible only to ~1% (relative L2; "
            "float64_rel_l2_diff 0.003-0.012), and torch float32 on 2 threads differs from 1 "
            "thread by as much; the stored Mixed_4e, Mixed_5c and head gradients are good to "
            "~1e-6. There is no "
            "batch norm amplifying round-off, so this is much milder than torchvision's case. "
            "Made with torch.set_num_threads(1)."],
        "generator": generator_info(),
    })
    return losses, losses64, train_vs_eval


# ---------------------------------------------------------------------------
# variables.json
# ---------------------------------------------------------------------------
def parameter_counts(values, classes):
    """(without aux, with aux) element counts of our variables, with the classifiers resized to
    `classes` arithmetically: every classifier is [1, 1, C_in, classes] + [classes]."""
    def is_classifier(name):
        scope = name.rsplit("/", 1)[0]
        return scope == SCOPE + "/Logits/Conv2d_0c_1x1" or (
            "/AuxLogits_" in scope and scope.endswith("/Conv2d_2b_1x1"))
    without = with_aux = 0
    for name, value in values.items():
        if is_classifier(name):
            n = value.shape[2] * classes if value.ndim == 4 else classes
        else:
            n = value.size
        with_aux += n
        if "/AuxLogits_" not in name:
            without += n
    return without, with_aux


def write_variables_json(path, values):
    without, with_aux = parameter_counts(values, NUM_CLASSES)
    without_1000, with_aux_1000 = parameter_counts(values, 1000)
    # The arithmetic against torch itself, for both class counts.
    built = {NUM_CLASSES: (without, with_aux), 1000: (without_1000, with_aux_1000)}
    for classes, (w, wa) in built.items():
        model = PaperGoogLeNet(classes)
        total = sum(p.numel() for p in model.parameters())
        aux = sum(p.numel() for p in model.aux.parameters())
        if (total - aux, total) != (w, wa):
            raise AssertionError("%d classes: counted %s, torch has %s" % (classes, (w, wa), (total - aux, total)))
    entries = [{"name": name, "shape": list(value.shape), "sum": exact_sum(value),
                "first": [float(x) for x in value.ravel()[:4]]} for name, value in values.items()]
    write_json(path, {
        "model": "the paper's GoogLeNet (Caffe bvlc_googlenet), %d classes, our names and "
                 "shapes (conv weights HWIO)" % NUM_CLASSES,
        "pattern": "docs/parity-fixtures.md",
        "count": len(entries),
        "num_classes": NUM_CLASSES,
        "parameters_without_aux": without,
        "parameters_with_aux": with_aux,
        "parameters_without_aux_1000_classes": without_1000,
        "parameters_with_aux_1000_classes": with_aux_1000,
        "notes": ["Order: base variables in network order, then Logits, then AuxLogits_4b, "
                  "AuxLogits_4e (each conv: weights, then biases).",
                  "sum and first: float64 sum and first four values (row-major, our shape) of "
                  "the float32 pattern.",
                  "The 1000-class counts replace each classifier's [1, 1, C, 10] + [10] by "
                  "[1, 1, C, 1000] + [1000]; both counts are checked against torch builds."],
        "variables": entries,
    })
    return without, with_aux, without_1000, with_aux_1000, len(entries)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="committed fixtures directory (default: %(default)s)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    # One thread: a fixed reduction order (reproducible numbers), and the machine is shared.
    torch.set_num_threads(1)
    torch.manual_seed(0)  # nothing here is random (dropout is off); just in case

    values = pattern_values(PaperGoogLeNet(NUM_CLASSES))
    summary = []
    _, eval_outs = run_eval_case(values, EVAL_CASE, args.out, summary)
    losses, losses64, train_vs_eval = run_train_case(values, TRAIN_CASE, args.out, summary,
                                                     eval_outs["Logits"])
    without, with_aux, without_1000, with_aux_1000, count = write_variables_json(
        os.path.join(args.out, "variables.json"), values)

    print("\n%-10s %-52s %-16s %-13s %-12s %s"
          % ("case", "name", "shape", "max_abs", "max|f32-f64|", "rel L2"))
    for case_name, name, shape, max_abs, diff, rel in summary:
        print("%-10s %-52s %-16s %-13.7g %-12.3g %.3g"
              % (case_name, name, "x".join(map(str, shape)), max_abs, diff, rel))
    print("\nlosses (float32): %s" % ", ".join("%s %.9g" % kv for kv in losses.items()))
    print("losses (float64): %s" % ", ".join("%s %.9g" % kv for kv in losses64.items()))
    print("train Logits vs eval Logits: max |diff| %g" % train_vs_eval)
    print("variables: %d; parameters (%d classes) without aux %s, with aux %s; "
          "(1000 classes) without aux %s, with aux %s"
          % (count, NUM_CLASSES, format(without, ","), format(with_aux, ","),
             format(without_1000, ","), format(with_aux_1000, ",")))
    print("committed fixtures: %s, %.1f KiB" % (args.out, du(args.out) / 1024.0))


if __name__ == "__main__":
    main()
