#!/usr/bin/env python3
"""Writes the small fixture files for Tests/InceptionFormatsTests/Fixtures.

Uses TensorFlow (tensorflow-cpu 2.21, graph mode through tf.compat.v1) to write the same set
of variables as a V1 checkpoint (one file) and as a sharded V2 checkpoint (an .index table and
two .data shards), NumPy to write .npy files in several dtypes and layouts, and, when the
`safetensors` package is installed, a small .safetensors file. Values come from NumPy with a
fixed seed; the script records what every reader should return in expected.json, as float32
bit patterns (after the float32 cast the readers perform), so tests can compare exactly.

Run from the repository root:  python3 scripts/make_format_fixtures.py
"""
import json
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "InceptionFormatsTests", "Fixtures")
SEED = 20160828
V2_ONLY = "extra/bfloat16_var"


def f32_bits(values):
    """The float32 bit patterns of `values` after casting to float32 (row-major)."""
    return np.asarray(values).astype(np.float32).reshape(-1).view(np.uint32).tolist()


def make_variables(rng):
    """Name -> (numpy value, TF dtype name, partitions along axis 0 or None)."""
    import ml_dtypes  # installed with TensorFlow; gives NumPy a bfloat16

    def normal(*shape, scale=0.1):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    conv = normal(3, 3, 3, 4)
    v = {
        # A conv layer as slim stores it: HWIO weights, batch norm without gamma.
        "InceptionV1/Conv2d_1a_7x7/weights": (conv, "float32", None),
        "InceptionV1/Conv2d_1a_7x7/BatchNorm/beta": (normal(4), "float32", None),
        "InceptionV1/Conv2d_1a_7x7/BatchNorm/moving_mean": (normal(4), "float32", None),
        "InceptionV1/Conv2d_1a_7x7/BatchNorm/moving_variance":
            (np.abs(normal(4, scale=1.0)) + 0.5, "float32", None),
        # The moving-average copy a training run with EMA adds.
        "InceptionV1/Conv2d_1a_7x7/weights/ExponentialMovingAverage":
            ((conv * 0.99).astype(np.float32), "float32", None),
        "InceptionV1/Mixed_3b/Branch_1/Conv2d_0b_3x3/weights": (normal(3, 3, 2, 3), "float32", None),
        "InceptionV1/Logits/Conv2d_0c_1x1/weights": (normal(1, 1, 4, 5), "float32", None),
        "InceptionV1/Logits/Conv2d_0c_1x1/biases": (normal(5), "float32", None),
        # A variable partitioned into three slices along axis 0.
        "InceptionV1/Mixed_4b/Branch_0/Conv2d_0a_1x1/weights": (normal(6, 4), "float32", 3),
        "global_step": (np.array(12345, dtype=np.int64), "int64", None),
        # Other dtypes the readers convert to float32.
        "extra/float64_var": (rng.standard_normal((2, 3)), "float64", None),
        "extra/float16_var": (rng.standard_normal(5).astype(np.float16), "float16", None),
        "extra/bfloat16_var":
            (rng.standard_normal(4).astype(np.float32).astype(ml_dtypes.bfloat16), "bfloat16", None),
        "extra/int32_var": (np.array([-7, 0, 42], dtype=np.int32), "int32", None),
        "extra/uint8_var": (np.array([[0, 1], [128, 255]], dtype=np.uint8), "uint8", None),
    }
    return v


def write_checkpoints(variables, directory):
    """Writes `variables` as a V1 checkpoint and as a two-shard V2 checkpoint."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saver_pb2

    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    with graph.as_default():
        created = []
        for i, (name, (value, dtype, parts)) in enumerate(sorted(variables.items())):
            scope, _, leaf = name.rpartition("/")
            partitioner = tf.compat.v1.fixed_size_partitioner(parts) if parts else None
            # Alternate devices so the sharded V2 saver writes two data files.
            with tf.device("/cpu:%d" % (i % 2)):
                with tf.compat.v1.variable_scope(scope or tf.compat.v1.get_variable_scope()):
                    var = tf.compat.v1.get_variable(
                        leaf, shape=value.shape, dtype=tf.as_dtype(dtype),
                        initializer=tf.compat.v1.zeros_initializer(), partitioner=partitioner,
                        use_resource=False)
            created.append((name, var, value))
        # A string variable: listed by the readers, refused as a tensor.
        with tf.device("/cpu:0"):
            text = tf.compat.v1.get_variable("extra/string_var", initializer=tf.constant("hello"),
                                             use_resource=False)
        assigns = []
        for name, var, value in created:
            if hasattr(var, "_get_variable_list"):  # a PartitionedVariable
                for part in var._get_variable_list():
                    info = part._get_save_slice_info()
                    start = info.var_offset[0]
                    stop = start + info.var_shape[0]
                    assigns.append(part.assign(value[start:stop]))
            else:
                assigns.append(var.assign(value))
        init = tf.compat.v1.global_variables_initializer()
        # V1 checkpoints cannot hold bfloat16 ("Saving data type bfloat16 not yet supported").
        v1_list = [v for v in tf.compat.v1.global_variables() if not v.op.name.startswith(V2_ONLY)]
        v1_saver = tf.compat.v1.train.Saver(v1_list, write_version=saver_pb2.SaverDef.V1)
        v2_saver = tf.compat.v1.train.Saver(write_version=saver_pb2.SaverDef.V2, sharded=True)
        config = tf.compat.v1.ConfigProto(device_count={"CPU": 2})
        with tf.compat.v1.Session(graph=graph, config=config) as session:
            session.run(init)
            session.run(assigns)
            assert session.run(text) == b"hello"
            os.makedirs(os.path.join(directory, "v1"), exist_ok=True)
            os.makedirs(os.path.join(directory, "v2"), exist_ok=True)
            v1_saver.save(session, os.path.join(directory, "v1", "model.ckpt"), write_meta_graph=False,
                          write_state=False)
            v2_saver.save(session, os.path.join(directory, "v2", "model.ckpt"), write_meta_graph=False,
                          write_state=False)
            # Read back with TensorFlow itself (restore into zeroed variables), so the fixtures
            # hold what we claim. TF's NewCheckpointReader cannot read sliced variables.
            readable = {name: (var.as_tensor() if hasattr(var, "as_tensor") else var.value())
                        for name, var, _ in created}
            for kind, saver in (("v1", v1_saver), ("v2", v2_saver)):
                session.run(init)
                saver.restore(session, os.path.join(directory, kind, "model.ckpt"))
                for name, (value, _, _) in variables.items():
                    if kind == "v1" and name == V2_ONLY:
                        continue
                    stored = session.run(readable[name])
                    assert np.array_equal(np.asarray(stored).astype(np.float64),
                                          np.asarray(value).astype(np.float64)), (kind, name)


def write_npy(directory, rng, expected):
    """NumPy arrays in the dtypes and layouts the .npy tests need."""
    os.makedirs(directory, exist_ok=True)
    base = (rng.standard_normal((2, 3)) * 10).astype(np.float64)
    arrays = {
        "f4": base.astype("<f4"),
        "f8": base.astype("<f8"),
        "f2": base.astype("<f2"),
        "u1": np.arange(6, dtype=np.uint8).reshape(2, 3) * 40,
        "i4": np.array([[-3, 0, 7], [100000, -100000, 1]], dtype="<i4"),
        "i8": np.array([[-3, 0, 7], [1 << 40, -(1 << 20), 1]], dtype="<i8"),
        "scalar_f4": np.array(3.25, dtype="<f4"),
        "vector_f4": np.linspace(-1, 1, 7).astype("<f4"),
        "empty_f4": np.zeros((0, 3), dtype="<f4"),
    }
    for name, array in arrays.items():
        np.save(os.path.join(directory, name + ".npy"), array)
        expected["npy"][name] = {"dtype": str(array.dtype), "shape": list(array.shape),
                                 "f32_bits": f32_bits(array)}
    # Files the reader must refuse.
    np.save(os.path.join(directory, "bad_big_endian_f4.npy"), base.astype(">f4"))
    np.save(os.path.join(directory, "bad_fortran_f4.npy"), np.asfortranarray(base.astype("<f4")))
    np.save(os.path.join(directory, "bad_object.npy"), np.array([1, "a"], dtype=object), allow_pickle=True)
    np.save(os.path.join(directory, "bad_structured.npy"), np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
    # A version 2.0 header and a version 3.0 header.
    from numpy.lib import format as npformat
    with open(os.path.join(directory, "v2_f4.npy"), "wb") as f:
        npformat.write_array(f, arrays["f4"], version=(2, 0))
    with open(os.path.join(directory, "v3_f4.npy"), "wb") as f:
        npformat.write_array(f, arrays["f4"], version=(3, 0))


def write_safetensors(directory, rng, expected):
    try:
        from safetensors.numpy import save_file
    except ImportError:
        print("safetensors not installed; skipping the .safetensors fixture", file=sys.stderr)
        return
    tensors = {
        "conv/weights": (rng.standard_normal((2, 2, 1, 3)) * 0.5).astype(np.float32),
        "conv/biases_f16": rng.standard_normal(3).astype(np.float16),
        "step": np.array([7], dtype=np.int64),
        "double": rng.standard_normal((2,)).astype(np.float64),
    }
    save_file(tensors, os.path.join(directory, "python.safetensors"), metadata={"format": "np", "source": "fixture"})
    expected["safetensors"] = {
        name: {"dtype": str(t.dtype), "shape": list(t.shape), "f32_bits": f32_bits(t)}
        for name, t in tensors.items()
    }


def main():
    rng = np.random.default_rng(SEED)
    variables = make_variables(rng)
    for sub in ("v1", "v2", "npy"):
        shutil.rmtree(os.path.join(OUT, sub), ignore_errors=True)
    for stale in ("python.safetensors", "expected.json"):
        if os.path.exists(os.path.join(OUT, stale)):
            os.remove(os.path.join(OUT, stale))
    os.makedirs(OUT, exist_ok=True)

    write_checkpoints(variables, OUT)
    expected = {
        "seed": SEED,
        "checkpoint": {
            name: {"dtype": dtype, "shape": list(np.shape(value)), "f32_bits": f32_bits(value),
                   "partitions": parts or 1, "v2_only": name == V2_ONLY}
            for name, (value, dtype, parts) in sorted(variables.items())
        },
        "checkpoint_unconvertible": {"extra/string_var": "string"},
        "npy": {},
    }
    write_npy(os.path.join(OUT, "npy"), rng, expected)
    write_safetensors(OUT, rng, expected)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")

    total = 0
    for dirpath, _, files in os.walk(OUT):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            total += os.path.getsize(path)
            print("%8d  %s" % (os.path.getsize(path), os.path.relpath(path, ROOT)))
    print("%8d  total" % total)


if __name__ == "__main__":
    main()
