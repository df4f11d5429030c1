#!/usr/bin/env python3
"""Make the torchvision fixtures: reference outputs of torchvision's GoogLeNet (PyTorch).

What it does (the pattern and sampling conventions are those of docs/parity-fixtures.md):

* Builds the real ``torchvision.models.googlenet`` (torchvision 0.28.0, torch 2.13.0) as
  ``googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=False,
  num_classes=1000)``. ``transform_input=True`` is how torchvision uses its pretrained
  (ported from the paper) weights: the caller feeds ImageNet mean/std-normalized images and
  the model maps each channel back with ``x * std / 0.5 + (mean - 0.5) / 0.5``, i.e. to
  ``2 * pixel - 1`` in [-1, 1], which is what the original weights expect.
* Fills every state_dict entry with the deterministic pattern below, so the Swift tests can
  recompute the very same weights (float64 maths, one rounding to float32):
  ``seed = FNV-1a-32(state_dict key)``, for element ``i`` in row-major order of the TORCH
  shape ``u = (seed + (i + 1) * 2654435761) mod 2^32``, ``v = u / 2^32 * 2 - 1``, and

      Conv2d weight [O, I, KH, KW]    v * sqrt(6 / (I * KH * KW))
      Linear weight [out, in]         v * sqrt(6 / in)
      Linear bias                     0.1 * v
      BatchNorm2d weight (gamma)      1 + 0.25 * v
      BatchNorm2d bias (beta)         0.1 * v
      BatchNorm2d running_mean        0.1 * v
      BatchNorm2d running_var         1 + 0.25 * v
      BatchNorm2d num_batches_tracked left as constructed (0)

  The input batch is the pattern named ``input`` with value ``v``, generated in NHWC order
  ``[N, H, W, 3]`` (the same array as the parity fixtures' input of that shape) and then
  transposed to NCHW for torch.
* Runs three cases and writes, per case, ``manifest.json`` plus float32 ``.npy`` samples:

      eval_224   eval mode, input [2, 3, 224, 224]: every endpoint below
      eval_odd   eval mode, input [1, 3, 163, 190]: the same endpoints (odd sizes exercise
                 ceil-mode max pooling and torch's symmetric convolution padding)
      train_224  train mode with every dropout at p = 0, input [2, 3, 224, 224], labels
                 [3, 997]: Logits and both aux heads (batch-statistics batch norm), the loss
                 CE(logits) + 0.3 * (CE(aux1) + CE(aux2)) (means over the batch), the
                 gradients of a few parameters, and the running statistics of two batch
                 norms after that one training-mode forward pass

  Endpoints are captured with forward hooks and stored under OUR names (the torch module is
  recorded too); 4-D outputs are transposed to NHWC before sampling, so the sample indices
  refer to the NHWC row-major layout; 2-D outputs (logits) stay [N, classes]. Gradients and
  running statistics keep the TORCH layout and are named by their state_dict key.
  Sampling: all elements if there are at most 4096, else indices 0..<512, n-512..<n and
  (j * 2147483647) mod n for j in 0..<3072 (int64 arithmetic).
  Each endpoint and gradient is also computed with a float64 copy of the same model and the
  largest difference is recorded (``float64_max_abs_diff``) as a guide for tolerances.
* Writes ``state_dict_keys.json``: every state_dict key in order with its torch shape,
  dtype, kind, the float64 sum and first four values of its pattern, and the parameter
  counts with and without the aux heads (6,624,904 without, torchvision's own figure).

Committed output (small), default ``--out``::

    Tests/InceptionTests/Fixtures/torchvision/state_dict_keys.json
    Tests/InceptionTests/Fixtures/torchvision/CASE/manifest.json
    Tests/InceptionTests/Fixtures/torchvision/CASE/NAME.npy

Local, git-ignored output, default ``--full-out`` (.fixtures-full/torchvision/)::

    googlenet_pattern.pth       torch.save(model.state_dict()) of the pattern model (with aux)
    eval_224_input_nhwc.npy     the full eval_224 input batch (float32, NHWC [2, 224, 224, 3])
    eval_224_logits.npy         the full eval_224 logits (float32, [2, 1000])

Installing (CPU only; the Swift package does not need any of this)::

    pip install /opt/wheels/torch-2.13.0+cpu-*.whl     # or: pip install torch==2.13.0
    pip install --no-deps torchvision==0.28.0
    pip install numpy==2.4.6

(also in scripts/requirements-fixtures.txt). ``--no-deps`` keeps pip from replacing the CPU
torch with a CUDA build; the torchvision wheel's compiled ops then may not load, which this
script works around (see ``import_googlenet``): the model itself is plain Python.

Run it from the repository root (it is rerunnable; it replaces what it wrote before)::

    python3 scripts/make_torchvision_fixtures.py [--out DIR] [--full-out DIR]
"""

import argparse
import copy
import math
import os
import sys

import numpy as np

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(SCRIPT_DIR)
DEFAULT_OUT = os.path.join(REPO_ROOT, "Tests", "InceptionTests", "Fixtures", "torchvision")
DEFAULT_FULL_OUT = os.path.join(REPO_ROOT, ".fixtures-full", "torchvision")

# The pattern, the sampling rule and the small output helpers are shared with the TF-slim
# parity script. Importing it does not import TensorFlow (that happens only inside its
# functions); it merely sets two TF_* environment defaults, which torch ignores.
sys.path.insert(0, SCRIPT_DIR)
from make_parity_fixtures import (  # noqa: E402
    du, exact_sum, fresh_dir, pattern_input, pattern_v, sample_indices, write_json)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MODEL_ARGS = dict(weights=None, aux_logits=True, transform_input=True, init_weights=False,
                  num_classes=1000)
EXPECTED_PARAMS_WITHOUT_AUX = 6_624_904  # torchvision's GoogLeNet_Weights meta "num_params"

# (torch module, our endpoint name), in network order.
ENDPOINTS = [
    ("conv1", "Conv2d_1a_7x7"),
    ("maxpool1", "MaxPool_2a_3x3"),
    ("conv2", "Conv2d_2b_1x1"),
    ("conv3", "Conv2d_2c_3x3"),
    ("maxpool2", "MaxPool_3a_3x3"),
    ("inception3a", "Mixed_3b"),
    ("inception3b", "Mixed_3c"),
    ("maxpool3", "MaxPool_4a_3x3"),
    ("inception4a", "Mixed_4b"),
    ("inception4b", "Mixed_4c"),
    ("inception4c", "Mixed_4d"),
    ("inception4d", "Mixed_4e"),
    ("inception4e", "Mixed_4f"),
    ("maxpool4", "MaxPool_5a_2x2"),
    ("inception5a", "Mixed_5b"),
    ("inception5b", "Mixed_5c"),
    ("avgpool", "global_pool"),
    ("fc", "Logits"),
]

EVAL_CASES = [
    dict(name="eval_224", batch=2, height=224, width=224),
    dict(name="eval_odd", batch=1, height=163, width=190),
]
TRAIN_CASE = dict(name="train_224", batch=2, height=224, width=224, labels=[3, 997],
                  aux_weight=0.3)
# Gradients stored by the training case (parameters, by state_dict key).
GRAD_KEYS = [
    "conv1.conv.weight", "conv1.bn.weight", "conv1.bn.bias",
    "inception3a.branch3.1.conv.weight", "inception4a.branch4.1.conv.weight",
    "inception4e.branch1.conv.weight", "inception5b.branch2.1.bn.bias",
    "fc.weight", "fc.bias",
    "aux1.conv.conv.weight", "aux1.conv.bn.weight", "aux1.fc1.weight", "aux1.fc1.bias",
    "aux1.fc2.weight", "aux2.fc1.weight", "aux2.fc2.bias",
]
# Batch norms whose running statistics are stored after the training forward pass.
RUNNING_STAT_BNS = ["conv1.bn", "aux1.conv.bn"]

SAMPLING = "all if n <= 4096; else 0..<512, n-512..<n, (j*2147483647) mod n for j in 0..<3072"


# ---------------------------------------------------------------------------
# torchvision
# ---------------------------------------------------------------------------
def import_googlenet():
    """Import torchvision and return (torchvision, googlenet).

    torchvision's compiled extension (_C.so) may not load: the 0.28.0 wheel is a CUDA build
    (its version reads 0.28.0+cu130) and, installed with --no-deps next to the CPU torch, lacks
    its CUDA libraries. Its
    import then fails not where it loads _C (that failure is tolerated) but later, in
    torchvision/_meta_registrations.py, whose ``@torch.library.register_fake("torchvision::nms")``
    decorators need the ops that _C would have registered. Those fake (meta) kernels are only
    for tracing/compiling the detection ops; GoogLeNet is plain Python on torch.nn and uses
    none of them. So, just for the import, register_fake becomes a no-op decorator, and it is
    restored right after.
    """
    original = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)
    try:
        import torchvision
        from torchvision.models import googlenet
    finally:
        torch.library.register_fake = original
    return torchvision, googlenet


# ---------------------------------------------------------------------------
# The pattern for torch state_dict entries
# ---------------------------------------------------------------------------
def torch_pattern_value(key, module, shape):
    """The float32 pattern of state_dict entry `key` of `module` (float64 maths, rounded once).
    Returns None for entries left as constructed (num_batches_tracked)."""
    shape = tuple(int(d) for d in shape)
    leaf = key.rsplit(".", 1)[-1]
    if isinstance(module, nn.BatchNorm2d) and leaf == "num_batches_tracked":
        return None
    v = pattern_v(key, int(np.prod(shape, dtype=np.int64)))
    if isinstance(module, nn.Conv2d) and leaf == "weight":
        _, cin, kh, kw = shape  # OIHW
        x = v * math.sqrt(6.0 / (cin * kh * kw))
    elif isinstance(module, nn.Linear) and leaf == "weight":
        x = v * math.sqrt(6.0 / shape[1])  # [out, in]
    elif isinstance(module, nn.Linear) and leaf == "bias":
        x = 0.1 * v
    elif isinstance(module, nn.BatchNorm2d) and leaf in ("weight", "running_var"):
        x = 1.0 + 0.25 * v
    elif isinstance(module, nn.BatchNorm2d) and leaf in ("bias", "running_mean"):
        x = 0.1 * v
    else:
        raise ValueError("no pattern for %s (%s)" % (key, type(module).__name__))
    return x.astype(np.float32).reshape(shape)


def pattern_state(model):
    """key -> float32 pattern array (None for entries kept as constructed), in state_dict order."""
    values = {}
    for key, tensor in model.state_dict().items():
        module = model.get_submodule(key.rsplit(".", 1)[0])
        values[key] = torch_pattern_value(key, module, tensor.shape)
    return values


def fill_pattern(model, values):
    """Copy the pattern into the model's parameters and buffers, then read it back."""
    state = model.state_dict()  # tensors sharing storage with the model
    with torch.no_grad():
        for key, value in values.items():
            if value is not None:
                state[key].copy_(torch.from_numpy(value))
    for key, tensor in model.state_dict().items():
        value = values[key]
        if value is not None and not np.array_equal(tensor.numpy(), value):
            raise AssertionError("%s did not take the pattern" % key)


def make_model(googlenet, values):
    model = googlenet(**MODEL_ARGS)
    fill_pattern(model, values)
    return model


def input_batch(case):
    """The pattern input: generated NHWC, returned as (nhwc float32, NCHW torch tensor)."""
    nhwc = pattern_input([case["batch"], case["height"], case["width"], 3])
    return nhwc, torch.from_numpy(np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)))


# ---------------------------------------------------------------------------
# Capture and storage
# ---------------------------------------------------------------------------
def to_nhwc(t):
    """A captured output as a numpy array (dtype kept), 4-D ones in NHWC, 2-D ones as they are."""
    a = t.detach().numpy()
    if a.ndim == 4:
        a = a.transpose(0, 2, 3, 1)
    elif a.ndim != 2:
        raise ValueError("unexpected rank %d" % a.ndim)
    return np.ascontiguousarray(a)


def run_with_hooks(model, x):
    """Run `model` on x (no grad) and return {our name: output in NHWC / [N, C]}."""
    captured = {}
    hooks = []
    for torch_name, our_name in ENDPOINTS:
        def hook(_module, _inputs, output, our_name=our_name):
            # Clone: a later in-place op must not change what was captured.
            captured[our_name] = output.detach().clone()
        hooks.append(model.get_submodule(torch_name).register_forward_hook(hook))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    if not torch.equal(logits, captured["Logits"]):
        raise AssertionError("the fc hook does not see the model's output")
    return {name: to_nhwc(t) for name, t in captured.items()}


def save_samples(path, array):
    """Write the float32 samples of `array` (row-major) to path; return (max_abs, count)."""
    flat = np.ascontiguousarray(array, dtype=np.float32).ravel()
    samples = flat[sample_indices(flat.size)]
    np.save(path, samples)
    return float(np.max(np.abs(flat))), int(samples.size)


def float64_gap(a, a64):
    """How far the float32 result `a` is from the float64 one: (max |a - a64|, ||a - a64|| / ||a64||)."""
    d = np.asarray(a, np.float64) - np.asarray(a64, np.float64)
    norm = float(np.linalg.norm(np.asarray(a64, np.float64)))
    return float(np.max(np.abs(d))), (float(np.linalg.norm(d)) / norm if norm > 0 else 0.0)


def generator_info(torchvision):
    return {"script": "scripts/make_torchvision_fixtures.py",
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(),
            "model": "torchvision.models.googlenet(%s)"
                     % ", ".join("%s=%r" % kv for kv in MODEL_ARGS.items()),
            "pattern": "scripts/make_torchvision_fixtures.py docstring (FNV-1a of the "
                       "state_dict key, torch row-major order)"}


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------
def run_eval_case(googlenet, torchvision, values, case, out_dir, summary):
    model = make_model(googlenet, values).eval()
    nhwc, x = input_batch(case)
    outs = run_with_hooks(model, x)
    outs64 = run_with_hooks(copy.deepcopy(model).double(), x.double())

    case_dir = os.path.join(out_dir, case["name"])
    fresh_dir(case_dir)
    entries = []
    for torch_name, name in ENDPOINTS:
        out = outs[name]
        max_abs, count = save_samples(os.path.join(case_dir, name + ".npy"), out)
        diff64, rel64 = float64_gap(out, outs64[name])
        entries.append({"name": name, "torch_module": torch_name, "shape": list(out.shape),
                        "layout": "NHWC" if out.ndim == 4 else "NC",
                        "elements": int(out.size), "max_abs": max_abs, "samples": count,
                        "float64_max_abs_diff": diff64, "float64_rel_l2_diff": rel64,
                        "file": name + ".npy"})
        summary.append((case["name"], name, out.shape, max_abs, diff64, rel64))

    write_json(os.path.join(case_dir, "manifest.json"), {
        "case": case["name"],
        "arguments": dict(MODEL_ARGS, mode="eval", batch=case["batch"],
                          height=case["height"], width=case["width"]),
        "input_name": "input",
        "input_shape": list(nhwc.shape),
        "input_layout": "NHWC (transposed to NCHW for torch)",
        "input_sum": exact_sum(nhwc),
        "sampling": SAMPLING,
        "notes": ["4-D endpoints are stored in NHWC (torch's NCHW output transposed); the "
                  "sample indices refer to NHWC row-major order. Logits stay [N, classes].",
                  "transform_input=True: the model first maps each input channel c by "
                  "x * std[c] / 0.5 + (mean[c] - 0.5) / 0.5 (ImageNet mean/std).",
                  "float64_max_abs_diff / float64_rel_l2_diff: max |float32 - float64| and "
                  "||float32 - float64|| / ||float64|| over the full tensor, the float64 run "
                  "using the same (float32) weights and input: a guide for tolerances."],
        "generator": generator_info(torchvision),
        "endpoints": entries,
    })
    return model, nhwc, outs


def run_train_case(googlenet, torchvision, values, case, out_dir, summary):
    def forward_backward(model, x):
        model.train()
        # Dropout off (torchvision's attribute names): the head's and each aux head's.
        model.dropout.p = 0.0
        model.aux1.dropout.p = 0.0
        model.aux2.dropout.p = 0.0
        # Keep the batch norms' inputs, to check the running-statistics update below.
        bn_inputs, hooks = {}, []
        for bn in RUNNING_STAT_BNS:
            def hook(_module, inputs, bn=bn):
                bn_inputs[bn] = inputs[0].detach().clone()
            hooks.append(model.get_submodule(bn).register_forward_pre_hook(hook))
        try:
            out = model(x)  # GoogLeNetOutputs(logits, aux_logits2, aux_logits1)
        finally:
            for h in hooks:
                h.remove()
        labels = torch.tensor(case["labels"], dtype=torch.int64)
        ce = {"ce_logits": F.cross_entropy(out.logits, labels),
              "ce_aux1": F.cross_entropy(out.aux_logits1, labels),
              "ce_aux2": F.cross_entropy(out.aux_logits2, labels)}
        loss = ce["ce_logits"] + case["aux_weight"] * (ce["ce_aux1"] + ce["ce_aux2"])
        model.zero_grad(set_to_none=True)
        loss.backward()
        params = dict(model.named_parameters())
        grads = {k: params[k].grad.detach().clone() for k in GRAD_KEYS}
        outputs = {"Logits": out.logits, "AuxLogits_4b": out.aux_logits1,
                   "AuxLogits_4e": out.aux_logits2}
        losses = dict(loss=loss, **ce)
        return outputs, losses, grads, bn_inputs

    model = make_model(googlenet, values)
    model64 = copy.deepcopy(model).double()
    nhwc, x = input_batch(case)
    outputs, losses, grads, bn_inputs = forward_backward(model, x)
    outputs64, losses64, grads64, _ = forward_backward(model64, x.double())

    case_dir = os.path.join(out_dir, case["name"])
    fresh_dir(case_dir)

    output_sources = {"Logits": "fc", "AuxLogits_4b": "aux1 (on inception4a)",
                      "AuxLogits_4e": "aux2 (on inception4d)"}
    output_entries = []
    for name, t in outputs.items():
        out = to_nhwc(t)
        max_abs, count = save_samples(os.path.join(case_dir, name + ".npy"), out)
        diff64, rel64 = float64_gap(out, to_nhwc(outputs64[name]))
        output_entries.append({"name": name, "torch_module": output_sources[name],
                               "shape": list(out.shape), "layout": "NC",
                               "elements": int(out.size), "max_abs": max_abs,
                               "samples": count, "float64_max_abs_diff": diff64,
                               "float64_rel_l2_diff": rel64, "file": name + ".npy"})
        summary.append((case["name"], name, out.shape, max_abs, diff64, rel64))

    grad_entries = []
    for key in GRAD_KEYS:
        g = grads[key].numpy()  # torch layout
        max_abs, count = save_samples(os.path.join(case_dir, key + ".npy"), g)
        diff64, rel64 = float64_gap(g, grads64[key].numpy())
        grad_entries.append({"key": key, "shape": list(g.shape), "layout": "torch",
                             "elements": int(g.size), "max_abs": max_abs, "samples": count,
                             "float64_max_abs_diff": diff64, "float64_rel_l2_diff": rel64,
                             "file": key + ".npy"})
        summary.append((case["name"], "grad " + key, g.shape, max_abs, diff64, rel64))

    # Running statistics after the one training-mode forward pass (momentum 0.1; torch
    # updates running_var with the UNBIASED batch variance, normalizes with the biased one).
    state = model.state_dict()
    stat_entries = []
    for bn in RUNNING_STAT_BNS:
        module = model.get_submodule(bn)
        inp = bn_inputs[bn].double()
        count = inp.numel() // inp.shape[1]
        mean = inp.mean(dim=(0, 2, 3))
        var_unbiased = inp.var(dim=(0, 2, 3), unbiased=True)
        m = module.momentum
        for leaf, expected in (("running_mean", mean), ("running_var", var_unbiased)):
            key = bn + "." + leaf
            old = torch.from_numpy(values[key]).double()
            want = (1 - m) * old + m * expected
            got = state[key]
            if not torch.allclose(got.double(), want, rtol=1e-5, atol=1e-6):
                raise AssertionError("%s does not follow the documented update" % key)
            arr = got.numpy()
            max_abs, samples = save_samples(os.path.join(case_dir, key + ".npy"), arr)
            stat_entries.append({"key": key, "shape": list(arr.shape), "elements": int(arr.size),
                                 "max_abs": max_abs, "samples": samples,
                                 "momentum": m, "batch_count_per_channel": int(count),
                                 "file": key + ".npy"})
        nbt = int(state[bn + ".num_batches_tracked"])
        stat_entries.append({"key": bn + ".num_batches_tracked", "value": nbt})

    loss_values = {k: float(v.item()) for k, v in losses.items()}
    loss_values64 = {k: float(v.item()) for k, v in losses64.items()}
    write_json(os.path.join(case_dir, "manifest.json"), {
        "case": case["name"],
        "arguments": dict(MODEL_ARGS, mode="train", batch=case["batch"], height=case["height"],
                          width=case["width"], labels=case["labels"],
                          dropout_p={"dropout": 0.0, "aux1.dropout": 0.0, "aux2.dropout": 0.0},
                          loss="CE(logits) + %g * (CE(aux1) + CE(aux2)), each CE the mean "
                               "over the batch" % case["aux_weight"]),
        "input_name": "input",
        "input_shape": list(nhwc.shape),
        "input_layout": "NHWC (transposed to NCHW for torch)",
        "input_sum": exact_sum(nhwc),
        "sampling": SAMPLING,
        "losses": loss_values,
        "losses_float64": loss_values64,
        "outputs": output_entries,
        "gradients": grad_entries,
        "running_stats": stat_entries,
        "notes": ["model.train() with model.dropout.p, model.aux1.dropout.p and "
                  "model.aux2.dropout.p set to 0: batch norm uses batch statistics (biased "
                  "variance for normalization, eps 0.001).",
                  "Gradients keep the torch layout (conv OIHW, linear [out, in]) and are "
                  "named by their state_dict key; one backward pass of the loss, grads "
                  "zeroed before.",
                  "Running statistics after the single training-mode forward pass: "
                  "new = 0.9 * old + 0.1 * batch_stat (momentum 0.1), where torch uses the "
                  "UNBIASED batch variance (divided by n - 1, n = N*H*W per channel) for "
                  "running_var. num_batches_tracked becomes 1.",
                  "Conditioning: with batch statistics the pattern network amplifies "
                  "round-off layer by layer (forward and backward), so the gradients below "
                  "the heads are only reproducible to a few percent: see "
                  "float64_rel_l2_diff (about 0.05 for the stem and Mixed_3b..Mixed_4f "
                  "weights) and float64_max_abs_diff. Even torch float32 on 1 vs 2 threads "
                  "differs that much; these fixtures were made with torch.set_num_threads(1). "
                  "The outputs, losses and the fc/aux gradients are well conditioned.",
                  "The aux heads pool 14x14 to 4x4 with adaptive average pooling: bins "
                  "[floor(i*14/4), ceil((i+1)*14/4)) = [0,4), [3,7), [7,11), [10,14), "
                  "which overlap."],
        "generator": generator_info(torchvision),
    })
    return loss_values, loss_values64


# ---------------------------------------------------------------------------
# state_dict_keys.json
# ---------------------------------------------------------------------------
def write_state_dict_keys(path, model, values, torchvision):
    params = dict(model.named_parameters())
    entries = []
    for key, tensor in model.state_dict().items():
        value = values[key]
        shown = value if value is not None else tensor.numpy()
        entries.append({"key": key, "shape": list(tensor.shape),
                        "dtype": str(tensor.dtype).replace("torch.", ""),
                        "kind": "parameter" if key in params else "buffer",
                        "pattern": value is not None,
                        "sum": exact_sum(shown),
                        "first": [float(v) for v in shown.ravel()[:4]]})
    with_aux = sum(p.numel() for p in params.values())
    without_aux = sum(p.numel() for k, p in params.items() if not k.startswith("aux"))
    meta = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.meta["num_params"]
    if without_aux != EXPECTED_PARAMS_WITHOUT_AUX or without_aux != meta:
        raise AssertionError("parameters without aux: %d (torchvision says %d)" % (without_aux, meta))
    write_json(path, {
        "model": "torchvision.models.googlenet(%s)"
                 % ", ".join("%s=%r" % kv for kv in MODEL_ARGS.items()),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "count": len(entries),
        "parameter_count": len(params),
        "parameters_without_aux": without_aux,
        "parameters_with_aux": with_aux,
        "state_dict_elements": sum(int(t.numel()) for t in model.state_dict().values()),
        "notes": ["sum and first: float64 sum and first four values of the pattern "
                  "(for num_batches_tracked: of the constructed value, 0).",
                  "parameters_without_aux excludes every key under aux1. and aux2.; "
                  "it equals torchvision's GoogLeNet_Weights.IMAGENET1K_V1 num_params."],
        "entries": entries,
    })
    return without_aux, with_aux, len(entries)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="committed fixtures directory (default: %(default)s)")
    parser.add_argument("--full-out", default=DEFAULT_FULL_OUT,
                        help="git-ignored directory for the .pth and full arrays (default: %(default)s)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.full_out, exist_ok=True)

    # One thread: a fixed reduction order, and the machine is shared.
    torch.set_num_threads(1)
    torch.manual_seed(0)  # nothing here is random (dropout is off); just in case

    torchvision, googlenet = import_googlenet()
    values = pattern_state(googlenet(**MODEL_ARGS))

    summary = []
    models = {}
    for case in EVAL_CASES:
        models[case["name"]] = run_eval_case(googlenet, torchvision, values, case, args.out, summary)
    losses, losses64 = run_train_case(googlenet, torchvision, values, TRAIN_CASE, args.out, summary)

    # state_dict_keys.json and the full (git-ignored) artifacts, from the eval_224 model
    # (untouched by training: num_batches_tracked still 0, running stats = pattern).
    model, nhwc, outs = models["eval_224"]
    without_aux, with_aux, count = write_state_dict_keys(
        os.path.join(args.out, "state_dict_keys.json"), model, values, torchvision)
    pth = os.path.join(args.full_out, "googlenet_pattern.pth")
    torch.save(model.state_dict(), pth)
    np.save(os.path.join(args.full_out, "eval_224_input_nhwc.npy"), nhwc)
    np.save(os.path.join(args.full_out, "eval_224_logits.npy"), outs["Logits"])
    reloaded = torch.load(pth, weights_only=True)
    for key, tensor in model.state_dict().items():
        if not torch.equal(reloaded[key], tensor):
            raise AssertionError("%s: %s differs after reloading" % (pth, key))

    print("\n%-10s %-40s %-18s %-14s %-10s %s"
          % ("case", "name", "shape", "max_abs", "max|f32-f64|", "rel L2"))
    for case_name, name, shape, max_abs, diff, rel in summary:
        print("%-10s %-40s %-18s %-14.9g %-12.3g %.3g"
              % (case_name, name, "x".join(map(str, shape)), max_abs, diff, rel))
    print("\nlosses (float32): %s" % ", ".join("%s %.9g" % kv for kv in losses.items()))
    print("losses (float64): %s" % ", ".join("%s %.9g" % kv for kv in losses64.items()))
    print("state_dict: %d keys; parameters without aux %s, with aux %s"
          % (count, format(without_aux, ","), format(with_aux, ",")))
    print("full artifacts: %s" % args.full_out)
    print("committed fixtures: %s, %.1f KiB" % (args.out, du(args.out) / 1024.0))


if __name__ == "__main__":
    main()
