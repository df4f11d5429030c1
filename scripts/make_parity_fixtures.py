#!/usr/bin/env python3
"""Make the parity fixtures: reference outputs of TF-slim's Inception V1.

What it does (the specification is docs/parity-fixtures.md):

* Builds the real TF-slim ``inception_v1`` (TF1 graph mode, ``is_training=False``,
  under ``inception_v1_arg_scope()``) on TensorFlow 2.21 + tf-slim 1.1.0.
  The network definition is tensorflow/models ``research/slim/nets/inception_v1.py``
  (vendored unchanged in scripts/reference/nets/, see the README there), because the
  copy inside the tf-slim 1.1.0 wheel (``tf_slim.nets.inception_v1``) is an older
  revision without ``global_pool`` and without the ``AvgPool_0a_7x7`` endpoint. The
  script checks that both build the same variables and produce the same outputs on
  the default case.
* Fills every variable, and the input batch, with the deterministic pattern of the
  spec (FNV-1a seed of the name, uint64 arithmetic, float64 maths, one rounding to
  float32), so the Swift tests can recompute the very same weights.
* Runs four cases and writes, per case, ``manifest.json`` plus one ``ENDPOINT.npy``
  of float32 samples per endpoint (every entry of the end_points dict, in network
  order), and ``variables.json`` for the default 1001-class model.

Committed output (small, under 2 MB), default ``--out``::

    Tests/InceptionTests/Fixtures/parity/variables.json
    Tests/InceptionTests/Fixtures/parity/CASE/manifest.json
    Tests/InceptionTests/Fixtures/parity/CASE/ENDPOINT.npy

Local, git-ignored output, default ``--full-out`` (.fixtures-full/)::

    v1/inception_v1.ckpt            V1 (single-file) checkpoint of the 1001-class model
    v2/model.ckpt-1000.{index,data-00000-of-00001}   V2 checkpoint of the same
    CASE/input.npy                  the full input batch (float32, NHWC)
    CASE/ENDPOINT.npy               every endpoint in full (float32)

Both checkpoints hold the pattern weights and ``global_step`` = 1000, e.g. for
``inception run --weights .fixtures-full/v1/inception_v1.ckpt --input .fixtures-full/224/input.npy``.

Run it from the repository root (it is rerunnable; it replaces what it wrote before)::

    pip install -r scripts/requirements-fixtures.txt
    python3 scripts/make_parity_fixtures.py [--out DIR] [--full-out DIR]
"""

import argparse
import importlib
import inspect
import json
import math
import os
import shutil
import sys
import types

# Eigen's plain CPU kernels rather than oneDNN's: TensorFlow warns that oneDNN
# can change round-off; these are reference numbers, keep them boring.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(SCRIPT_DIR)
DEFAULT_OUT = os.path.join(REPO_ROOT, "Tests", "InceptionTests", "Fixtures", "parity")
DEFAULT_FULL_OUT = os.path.join(REPO_ROOT, ".fixtures-full")

# The cases of the brief. Every one is is_training=False under inception_v1_arg_scope().
CASES = [
    dict(name="224", batch=2, height=224, width=224, global_pool=False,
         num_classes=1001, batch_norm_scale=False, spatial_squeeze=True),
    dict(name="112_global_pool", batch=1, height=112, width=112, global_pool=True,
         num_classes=1001, batch_norm_scale=False, spatial_squeeze=True),
    dict(name="199x257_global_pool", batch=1, height=199, width=257, global_pool=True,
         num_classes=1001, batch_norm_scale=False, spatial_squeeze=True),
    dict(name="112_gamma_unsqueezed", batch=1, height=112, width=112, global_pool=True,
         num_classes=10, batch_norm_scale=True, spatial_squeeze=False),
]
DEFAULT_CASE = "224"  # the 1001-class model without gamma: variables.json and checkpoints

EXPECTED_BASE_ELEMENTS = 5_607_184  # the slim test's parameter count of inception_v1_base
GLOBAL_STEP = 1000

# ---------------------------------------------------------------------------
# The deterministic pattern (docs/parity-fixtures.md)
# ---------------------------------------------------------------------------
FNV_OFFSET = 2166136261
FNV_PRIME = 16777619
GOLDEN = 2654435761
TWO32 = 1 << 32


def fnv1a32(name):
    """32-bit FNV-1a over the UTF-8 bytes of name."""
    h = FNV_OFFSET
    for byte in name.encode("utf-8"):
        h ^= byte
        h = (h * FNV_PRIME) % TWO32
    return h


def pattern_v(name, count):
    """v[i] = u / 2^32 * 2 - 1 with u = (seed + (i + 1) * 2654435761) mod 2^32, float64."""
    i = np.arange(count, dtype=np.uint64)
    u = (np.uint64(fnv1a32(name)) + (i + np.uint64(1)) * np.uint64(GOLDEN)) % np.uint64(TWO32)
    return u.astype(np.float64) / float(TWO32) * 2.0 - 1.0


def pattern_value(name, shape):
    """The float32 value of variable `name` (no ':0'), from float64, rounded once."""
    shape = tuple(int(d) for d in shape)
    v = pattern_v(name, int(np.prod(shape, dtype=np.int64)))
    kind = name.rsplit("/", 1)[-1]
    if kind == "weights":
        if len(shape) != 4:
            raise ValueError("weights %s: expected KHxKWxCIxCO, got %s" % (name, shape))
        kh, kw, ci, _ = shape
        x = v * math.sqrt(6.0 / (kh * kw * ci))
    elif kind in ("biases", "beta", "moving_mean"):
        x = 0.1 * v
    elif kind in ("gamma", "moving_variance"):
        x = 1.0 + 0.25 * v
    else:
        raise ValueError("no pattern for variable %s" % name)
    return x.astype(np.float32).reshape(shape)


def pattern_input(shape):
    """The input batch: the pattern with name 'input' and value v, NHWC float32."""
    shape = tuple(shape)
    return pattern_v("input", int(np.prod(shape, dtype=np.int64))).astype(np.float32).reshape(shape)


# ---------------------------------------------------------------------------
# Sampling (docs/parity-fixtures.md)
# ---------------------------------------------------------------------------
SAMPLE_ALL_LIMIT = 4096
SAMPLE_HEAD = 512
SAMPLE_TAIL = 512
SAMPLE_STRIDED = 3072
SAMPLE_STRIDE = 2147483647


def sample_indices(n):
    """Flat row-major indices: all if n <= 4096, else head 512, tail 512, then
    (j * 2147483647) mod n for j in 0..<3072, in that order (int64 arithmetic)."""
    if n <= SAMPLE_ALL_LIMIT:
        return np.arange(n, dtype=np.int64)
    head = np.arange(0, SAMPLE_HEAD, dtype=np.int64)
    tail = np.arange(n - SAMPLE_TAIL, n, dtype=np.int64)
    strided = (np.arange(SAMPLE_STRIDED, dtype=np.int64) * np.int64(SAMPLE_STRIDE)) % np.int64(n)
    return np.concatenate([head, tail, strided])


def exact_sum(a):
    """Correctly rounded float64 sum of the (float32) values."""
    return math.fsum(np.asarray(a, dtype=np.float64).ravel().tolist())


# ---------------------------------------------------------------------------
# TensorFlow / TF-slim setup
# ---------------------------------------------------------------------------
def import_tensorflow_and_slim():
    """Import TF in TF1 graph mode and tf-slim 1.1.0, with the compatibility aliases
    it needs on TensorFlow 2.21 (see shared reference notes, section 3)."""
    # tf.layers (used by slim's batch norm) imports tf_keras.legacy_tf_layers, which
    # tf-keras 2.21 moved to tf_keras.src.legacy_tf_layers: register the old names.
    legacy = importlib.import_module("tf_keras.src.legacy_tf_layers")
    sys.modules.setdefault("tf_keras.legacy_tf_layers", legacy)
    for sub in ("base", "convolutional", "core", "normalization", "pooling",
                "variable_scope_shim", "migration_utils"):
        try:
            mod = importlib.import_module("tf_keras.src.legacy_tf_layers." + sub)
        except ImportError:
            continue
        sys.modules.setdefault("tf_keras.legacy_tf_layers." + sub, mod)

    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    import tf_slim as slim

    # scripts/reference/nets/inception_utils.py is the newest tensorflow/models copy
    # we could vendor; it predates the tf_slim migration and spells TF-slim as
    # tf.contrib.slim and the collections as tf.GraphKeys. Provide those two names.
    if not hasattr(tf, "contrib"):
        tf.contrib = types.SimpleNamespace(slim=slim)
    if not hasattr(tf, "GraphKeys"):
        tf.GraphKeys = tf.compat.v1.GraphKeys
    return tf, slim


def import_reference_net():
    """The tensorflow/models research/slim inception_v1 (vendored, unchanged)."""
    ref_dir = os.path.join(SCRIPT_DIR, "reference")
    if ref_dir not in sys.path:
        sys.path.insert(0, ref_dir)
    from nets import inception_v1 as ref  # noqa: E402  (scripts/reference/nets)
    return ref


def arg_scope_for(slim, arg_scope_fn, batch_norm_scale):
    """inception_v1_arg_scope(), with gamma if asked: through its batch_norm_scale
    argument when it has one, else by an arg_scope override of slim.batch_norm."""
    params = inspect.signature(arg_scope_fn).parameters
    if "batch_norm_scale" in params:
        return arg_scope_fn(batch_norm_scale=batch_norm_scale)
    sc = arg_scope_fn()
    if not batch_norm_scale:
        return sc
    with slim.arg_scope(sc):
        with slim.arg_scope([slim.batch_norm], scale=True) as sc_with_gamma:
            return sc_with_gamma


def var_name(v):
    return v.op.name  # the name without ":0"


def set_pattern_weights(tf, sess, variables):
    """Assign the pattern to every variable, read it back and check it."""
    values = {}
    assigns, feeds = [], {}
    for v in variables:
        name = var_name(v)
        value = pattern_value(name, v.shape.as_list())
        ph = tf.compat.v1.placeholder(v.dtype.base_dtype, shape=value.shape)
        assigns.append(v.assign(ph))
        feeds[ph] = value
        values[name] = value
    sess.run(assigns, feed_dict=feeds)
    for v, got in zip(variables, sess.run(variables)):
        if not np.array_equal(got, values[var_name(v)]):
            raise AssertionError("variable %s did not take the pattern" % var_name(v))
    return values


def build(tf, slim, net_module, case, arg_scope_fn=None):
    """A fresh graph with the network of `case`; returns (graph, input, end_points)."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(
            tf.float32, [case["batch"], case["height"], case["width"], 3], name="input")
        arg_scope_fn = arg_scope_fn or net_module.inception_v1_arg_scope
        kwargs = dict(num_classes=case["num_classes"], is_training=False,
                      spatial_squeeze=case["spatial_squeeze"])
        if case["global_pool"]:
            kwargs["global_pool"] = True
        with slim.arg_scope(arg_scope_for(slim, arg_scope_fn, case["batch_norm_scale"])):
            _, end_points = net_module.inception_v1(images, **kwargs)
    return graph, images, end_points


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def fresh_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def write_variables_json(path, variables, values):
    entries = []
    total = base = 0
    for v in variables:
        name = var_name(v)
        value = values[name]
        entries.append({
            "name": name,
            "shape": list(value.shape),
            "sum": exact_sum(value),
            "first": [float(x) for x in value.ravel()[:4]],
        })
        total += value.size
        if name.startswith("InceptionV1/") and not name.startswith("InceptionV1/Logits/"):
            base += value.size
    if base != EXPECTED_BASE_ELEMENTS:
        raise AssertionError("base network has %d elements, expected %d" % (base, EXPECTED_BASE_ELEMENTS))
    write_json(path, {
        "model": "inception_v1, num_classes 1001, batch_norm_scale False",
        "pattern": "docs/parity-fixtures.md",
        "count": len(entries),
        "total_elements": total,
        "base_elements": base,
        "variables": entries,
    })
    return total, base


def save_checkpoints(tf, sess, full_out):
    """V1 and V2 checkpoints of the current graph's variables plus global_step."""
    from tensorflow.core.protobuf import saver_pb2
    global_step = tf.compat.v1.train.get_or_create_global_step()
    sess.run(global_step.assign(GLOBAL_STEP))
    v1_dir, v2_dir = os.path.join(full_out, "v1"), os.path.join(full_out, "v2")
    fresh_dir(v1_dir)
    fresh_dir(v2_dir)
    saver_v1 = tf.compat.v1.train.Saver(write_version=saver_pb2.SaverDef.V1)
    v1_path = saver_v1.save(sess, os.path.join(v1_dir, "inception_v1.ckpt"), write_meta_graph=False)
    saver_v2 = tf.compat.v1.train.Saver(write_version=saver_pb2.SaverDef.V2)
    v2_path = saver_v2.save(sess, os.path.join(v2_dir, "model.ckpt"), global_step=GLOBAL_STEP,
                            write_meta_graph=False)
    return v1_path, v2_path


def check_checkpoint(tf, path, values):
    """Read a checkpoint back and compare it with the pattern."""
    reader = tf.compat.v1.train.NewCheckpointReader(path)
    shapes = reader.get_variable_to_shape_map()
    names = set(values) | {"global_step"}
    if set(shapes) != names:
        raise AssertionError("%s: unexpected names %s" % (path, sorted(set(shapes) ^ names)))
    for name, value in values.items():
        if not np.array_equal(reader.get_tensor(name), value):
            raise AssertionError("%s: %s differs" % (path, name))
    if int(reader.get_tensor("global_step")) != GLOBAL_STEP:
        raise AssertionError("%s: global_step" % path)


def cross_check_with_tf_slim_wheel(tf, slim, case, ref_values, ref_outputs):
    """Build tf_slim.nets.inception_v1 (the copy in the tf-slim wheel: older, no
    global_pool, head pool scoped MaxPool_0a_7x7 and not an endpoint) with the same
    pattern and check it has the same variables and the same endpoint values."""
    from tf_slim.nets import inception_v1 as wheel
    graph, images, end_points = build(tf, slim, wheel, case)
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        variables = tf.compat.v1.global_variables()
        names = [var_name(v) for v in variables]
        if names != list(ref_values):
            raise AssertionError("tf_slim.nets.inception_v1 creates other variables")
        set_pattern_weights(tf, sess, variables)
        x = pattern_input(images.shape.as_list())
        outs = sess.run(dict(end_points), feed_dict={images: x})
    worst = 0.0
    for name, out in outs.items():
        ref = ref_outputs[name]
        if out.shape != ref.shape:
            raise AssertionError("tf_slim wheel %s: shape %s vs %s" % (name, out.shape, ref.shape))
        scale = max(float(np.max(np.abs(ref))), 1e-30)
        worst = max(worst, float(np.max(np.abs(out - ref))) / scale)
    if worst > 1e-5:
        raise AssertionError("tf_slim wheel differs from the reference: %g" % worst)
    return sorted(outs), worst


def run_case(tf, slim, ref, case, out_dir, full_out, summary, want_default_artifacts):
    graph, images, end_points = build(tf, slim, ref, case)
    result = {}
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        variables = tf.compat.v1.global_variables()
        gammas = [v for v in variables if var_name(v).endswith("/gamma")]
        if case["batch_norm_scale"] != bool(gammas):
            raise AssertionError("case %s: gamma variables: %d" % (case["name"], len(gammas)))
        values = set_pattern_weights(tf, sess, variables)
        x = pattern_input(images.shape.as_list())
        names = list(end_points)  # network order: the dict keeps insertion order
        outs = sess.run([end_points[n] for n in names], feed_dict={images: x})

        case_dir = os.path.join(out_dir, case["name"])
        full_dir = os.path.join(full_out, case["name"])
        fresh_dir(case_dir)
        fresh_dir(full_dir)
        np.save(os.path.join(full_dir, "input.npy"), x)
        entries = []
        for name, out in zip(names, outs):
            out = np.ascontiguousarray(out, dtype=np.float32)
            flat = out.ravel()
            samples = flat[sample_indices(flat.size)]
            np.save(os.path.join(case_dir, name + ".npy"), samples)
            np.save(os.path.join(full_dir, name + ".npy"), out)
            max_abs = float(np.max(np.abs(flat)))
            entries.append({"name": name, "shape": list(out.shape), "elements": int(flat.size),
                            "max_abs": max_abs, "samples": int(samples.size),
                            "file": name + ".npy"})
            summary.append((case["name"], name, tuple(out.shape), max_abs))
            result[name] = out
        arguments = {k: case[k] for k in ("batch", "height", "width", "global_pool",
                                           "num_classes", "batch_norm_scale", "spatial_squeeze")}
        arguments.update(is_training=False, dropout_keep_prob=0.8, scope="InceptionV1")
        write_json(os.path.join(case_dir, "manifest.json"), {
            "case": case["name"],
            "arguments": arguments,
            "input_name": "input",
            "input_shape": list(x.shape),
            "input_sum": exact_sum(x),
            "variable_count": len(variables),
            "sampling": "all if n <= 4096; else 0..<512, n-512..<n, (j*2147483647) mod n for j in 0..<3072",
            "generator": {"script": "scripts/make_parity_fixtures.py",
                          "tensorflow": tf.__version__,
                          "tf_slim": _version("tf-slim"),
                          "numpy": np.__version__,
                          "network": "tensorflow/models research/slim/nets/inception_v1.py"},
            "endpoints": entries,
        })

        artifacts = None
        if want_default_artifacts:
            total, base = write_variables_json(os.path.join(out_dir, "variables.json"), variables, values)
            v1_path, v2_path = save_checkpoints(tf, sess, full_out)
            artifacts = dict(total=total, base=base, count=len(variables), values=values,
                             v1=v1_path, v2=v2_path)
    return result, artifacts


def _version(dist):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:  # pragma: no cover
        return "unknown"


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="committed fixtures directory (default: %(default)s)")
    parser.add_argument("--full-out", default=DEFAULT_FULL_OUT,
                        help="git-ignored directory for checkpoints and full arrays (default: %(default)s)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.full_out, exist_ok=True)

    tf, slim = import_tensorflow_and_slim()
    ref = import_reference_net()

    summary = []
    default_outputs = artifacts = None
    for case in CASES:
        outputs, arts = run_case(tf, slim, ref, case, args.out, args.full_out, summary,
                                 want_default_artifacts=(case["name"] == DEFAULT_CASE))
        if arts is not None:
            default_outputs, artifacts = outputs, arts

    check_checkpoint(tf, artifacts["v1"], artifacts["values"])
    check_checkpoint(tf, artifacts["v2"], artifacts["values"])
    default_case = next(c for c in CASES if c["name"] == DEFAULT_CASE)
    shared, worst = cross_check_with_tf_slim_wheel(tf, slim, default_case, artifacts["values"],
                                                   default_outputs)

    print("\n%-22s %-16s %-22s %s" % ("case", "endpoint", "shape", "max_abs"))
    for case_name, name, shape, max_abs in summary:
        print("%-22s %-16s %-22s %.9g" % (case_name, name, "x".join(map(str, shape)), max_abs))
    print("\nvariables (1001 classes): %d, total elements %d, base network %d"
          % (artifacts["count"], artifacts["total"], artifacts["base"]))
    print("checkpoints: %s, %s (global_step %d)" % (artifacts["v1"], artifacts["v2"], GLOBAL_STEP))
    print("tf_slim.nets.inception_v1 (wheel) agrees on %d endpoints, max relative diff %.3g"
          % (len(shared), worst))
    print("committed fixtures: %s, %.1f KiB" % (args.out, du(args.out) / 1024.0))


if __name__ == "__main__":
    main()
