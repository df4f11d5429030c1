#!/usr/bin/env python3
"""Make the training-step fixtures: TF-slim's own training steps on Inception V1.

What it does:

* Builds the real TF-slim ``inception_v1`` (tensorflow/models research/slim, vendored in
  scripts/reference/nets) with ``is_training=True`` under ``inception_v1_arg_scope()`` (weight
  decay 4e-5, batch norm decay 0.9997, epsilon 0.001, fused batch norm, UPDATE_OPS), exactly as
  ``train_image_classifier.py`` + ``deployment/model_deploy.py`` put a step together:
  ``tf.losses.softmax_cross_entropy(onehot, logits, label_smoothing=0.1)``; total loss = that
  + ``add_n(regularization losses)``; ``optimizer.compute_gradients(total_loss, trainable vars)``;
  ``apply_gradients(..., global_step)`` grouped with the UPDATE_OPS (the batch-norm moving
  averages); the learning rate from ``_configure_learning_rate``.
* **Dropout keep probability 1.0** (``dropout_keep_prob=1.0``) so the step is deterministic: TF's
  random stream cannot be reproduced outside TF. Dropout itself is checked by the Swift gradient
  tests (its mask is the gradient).
* Weights and the input batch use the deterministic pattern of docs/parity-fixtures.md (the
  machinery of scripts/make_parity_fixtures.py is imported, not copied), so the Swift test
  recomputes them bit for bit. Labels: ``(7 * i + 3) % 10``. Batch 4, 80x80 (odd SAME paddings
  down the network: 80 → 40 → 20 → 10 → 5 → 3), 10 classes, ``global_pool=True``.
* Cases: ``rmsprop`` (slim's default optimizer: decay 0.9, momentum 0.9, epsilon 1.0; one step,
  lr 0.01), ``momentum`` (0.9) and ``adam`` (0.9 / 0.999, epsilon 1.0 = slim's --opt_epsilon):
  two steps each on the same batch with slim's exponential decay (0.94, staircase) every step, so
  the learning rate changes between the steps and the optimizer state carries over.
* Checks and records two TF facts the Swift side relies on: TF1's RMSProp mean-square slot starts
  at 1.0, and the batch variance fused batch norm hands to the moving average carries Bessel's
  correction n/(n − 1) (measured from the batch-norm op's own input).

Committed output (under 1 MB), default ``--out``::

    Tests/InceptionTrainingTests/Fixtures/training_step/CASE/manifest.json
    Tests/InceptionTrainingTests/Fixtures/training_step/CASE/*.npy

Per case the manifest lists per step the losses and learning rate, and per sampled variable its
files: ``grad`` (first step's gradient of the total loss; ``grad_steps`` every step's), ``value``
(after the last step), ``slot.*`` (optimizer slots after the last step); batch-norm scopes get
every step's batch mean / variance and the moving mean / variance after the last step. The
per-step gradients and statistics let the Swift test replay TF's own numbers through our
optimizer and moving averages (exact to float32), separately from the gradient comparison,
which float32 chaos limits (see Tests/InceptionTrainingTests/TrainingStepParityTests.swift). Samples follow
docs/parity-fixtures.md (all elements up to 4096, else head 512, tail 512, 3072 strided).

Run from the repository root (rerunnable; replaces what it wrote)::

    pip install -r scripts/requirements-fixtures.txt
    python3 scripts/make_training_fixtures.py [--out DIR]
"""

import argparse
import json
import os
import sys

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPT_DIR)
import make_parity_fixtures as mpf  # noqa: E402  (sets the TF environment variables too)

import numpy as np  # noqa: E402

REPO_ROOT = os.path.dirname(SCRIPT_DIR)
DEFAULT_OUT = os.path.join(REPO_ROOT, "Tests", "InceptionTrainingTests", "Fixtures", "training_step")

BATCH, HEIGHT, WIDTH, CLASSES = 4, 80, 80, 10
LABEL_SMOOTHING = 0.1
WEIGHT_DECAY = 0.00004
BATCH_NORM_DECAY = 0.9997
LEARNING_RATE = 0.01

WEIGHTS_RMSPROP = [
    "InceptionV1/Conv2d_1a_7x7/weights",
    "InceptionV1/Mixed_3b/Branch_2/Conv2d_0a_1x1/weights",
    "InceptionV1/Mixed_4c/Branch_1/Conv2d_0b_3x3/weights",
    "InceptionV1/Mixed_5c/Branch_3/Conv2d_0b_1x1/weights",
    "InceptionV1/Logits/Conv2d_0c_1x1/weights",
    "InceptionV1/Logits/Conv2d_0c_1x1/biases",
]
BATCH_NORMS_RMSPROP = [
    "InceptionV1/Conv2d_1a_7x7/BatchNorm",
    "InceptionV1/Mixed_3b/Branch_2/Conv2d_0a_1x1/BatchNorm",
    "InceptionV1/Mixed_4c/Branch_1/Conv2d_0b_3x3/BatchNorm",
    "InceptionV1/Mixed_5c/Branch_3/Conv2d_0b_1x1/BatchNorm",
]
WEIGHTS_SHORT = [
    "InceptionV1/Conv2d_1a_7x7/weights",
    "InceptionV1/Mixed_4c/Branch_1/Conv2d_0b_3x3/weights",
    "InceptionV1/Logits/Conv2d_0c_1x1/weights",
    "InceptionV1/Logits/Conv2d_0c_1x1/biases",
]
BATCH_NORMS_SHORT = [
    "InceptionV1/Conv2d_1a_7x7/BatchNorm",
    "InceptionV1/Mixed_5c/Branch_3/Conv2d_0b_1x1/BatchNorm",
]

CASES = [
    dict(name="rmsprop", optimizer="rmsprop", steps=1, decay_steps=None,
         weights=WEIGHTS_RMSPROP, batch_norms=BATCH_NORMS_RMSPROP),
    dict(name="momentum", optimizer="momentum", steps=2, decay_steps=1,
         weights=WEIGHTS_SHORT[:2] + WEIGHTS_SHORT[3:], batch_norms=BATCH_NORMS_SHORT[:1]),
    dict(name="adam", optimizer="adam", steps=2, decay_steps=1,
         weights=WEIGHTS_SHORT, batch_norms=BATCH_NORMS_SHORT),
]

MODEL_ROLES = ("weights", "biases", "beta", "gamma", "moving_mean", "moving_variance")


def labels():
    return [(7 * i + 3) % CLASSES for i in range(BATCH)]


def make_optimizer(tf, kind, lr):
    """slim's _configure_optimizer with its default flags."""
    if kind == "rmsprop":
        return tf.compat.v1.train.RMSPropOptimizer(lr, decay=0.9, momentum=0.9, epsilon=1.0)
    if kind == "momentum":
        return tf.compat.v1.train.MomentumOptimizer(lr, momentum=0.9, name="Momentum")
    if kind == "adam":
        return tf.compat.v1.train.AdamOptimizer(lr, beta1=0.9, beta2=0.999, epsilon=1.0)
    raise ValueError(kind)


def build_training_step(tf, slim, ref, images, label_ids, num_classes, optimizer_kind, learning_rate,
                        dropout_keep_prob=1.0, label_smoothing=LABEL_SMOOTHING, global_pool=True):
    """One TF-slim training step in the current graph, as train_image_classifier.py +
    deployment/model_deploy.py build it: inception_v1 (is_training=True) under
    inception_v1_arg_scope(weight_decay=4e-5), softmax cross-entropy on one-hot labels, total loss =
    that + add_n(regularization losses), compute_gradients over the trainable variables,
    apply_gradients(global_step) grouped with the UPDATE_OPS (batch-norm moving averages), and
    train_tensor = identity(total_loss) under that group. `learning_rate` is a function of the
    global step returning a tensor. Also used by benchmarks/run_training_peers.py."""
    with slim.arg_scope(ref.inception_v1_arg_scope(weight_decay=WEIGHT_DECAY)):
        logits, _ = ref.inception_v1(images, num_classes=num_classes, is_training=True,
                                     dropout_keep_prob=dropout_keep_prob, global_pool=global_pool)
    onehot = tf.one_hot(label_ids, num_classes)
    tf.compat.v1.losses.softmax_cross_entropy(onehot, logits, label_smoothing=label_smoothing, weights=1.0)
    # model_deploy._gather_clone_loss: the clone's losses, then the regularization losses.
    clone_loss = tf.add_n(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.LOSSES))
    regularization_loss = tf.add_n(tf.compat.v1.losses.get_regularization_losses())
    total_loss = tf.add_n([clone_loss, regularization_loss])
    global_step = tf.compat.v1.train.get_or_create_global_step()
    lr = learning_rate(global_step)
    optimizer = make_optimizer(tf, optimizer_kind, lr)
    trainable = tf.compat.v1.trainable_variables()
    grads_and_vars = optimizer.compute_gradients(total_loss, var_list=trainable)
    grad_updates = optimizer.apply_gradients(grads_and_vars, global_step=global_step)
    update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS) + [grad_updates]
    update_op = tf.group(*update_ops)
    with tf.control_dependencies([update_op]):
        train_tensor = tf.identity(total_loss, name="train_op")
    return {"logits": logits, "clone_loss": clone_loss, "regularization_loss": regularization_loss,
            "total_loss": total_loss, "global_step": global_step, "learning_rate": lr, "optimizer": optimizer,
            "grads_and_vars": grads_and_vars, "update_ops": update_ops, "train_tensor": train_tensor}


def safe(name):
    return name.replace("/", ".")


def save_samples(case_dir, file_name, value):
    flat = np.ascontiguousarray(value, dtype=np.float32).ravel()
    samples = flat[mpf.sample_indices(flat.size)]
    np.save(os.path.join(case_dir, file_name), samples)
    return {"file": file_name, "elements": int(flat.size), "samples": int(samples.size),
            "max_abs": float(np.max(np.abs(flat))) if flat.size else 0.0}


def find_batch_norm_op(graph, scope):
    """The fused batch-norm op of a slim `.../BatchNorm` scope. Its name carries the scope under
    the network's name scope, which repeats the variable scope: InceptionV1/InceptionV1/..."""
    ops = [op for op in graph.get_operations()
           if op.type.startswith("FusedBatchNorm") and "Grad" not in op.type
           and op.name.rsplit("/", 1)[0] in ("InceptionV1/" + scope, scope)]
    if len(ops) != 1:
        raise AssertionError("batch norm op for %s: %s" % (scope, [op.name for op in ops]))
    return ops[0]


def run_case(tf, slim, ref, case, out_dir):
    graph = tf.Graph()
    with graph.as_default():
        x = mpf.pattern_input([BATCH, HEIGHT, WIDTH, 3])
        images = tf.constant(x, name="input")
        label_values = labels()
        if case["decay_steps"] is None:
            def learning_rate(_):
                return tf.constant(LEARNING_RATE, name="fixed_learning_rate")
        else:
            def learning_rate(global_step):
                return tf.compat.v1.train.exponential_decay(
                    LEARNING_RATE, global_step, case["decay_steps"], 0.94, staircase=True,
                    name="exponential_decay_learning_rate")
        built = build_training_step(tf, slim, ref, images, tf.constant(label_values), CLASSES,
                                    case["optimizer"], learning_rate)
        clone_loss, regularization_loss = built["clone_loss"], built["regularization_loss"]
        global_step, lr, optimizer = built["global_step"], built["learning_rate"], built["optimizer"]
        grads_and_vars, update_ops, train_tensor = built["grads_and_vars"], built["update_ops"], built["train_tensor"]

        model_vars = [v for v in tf.compat.v1.global_variables()
                      if v.op.name.startswith("InceptionV1/") and v.op.name.rsplit("/", 1)[-1] in MODEL_ROLES]
        by_name = {v.op.name: v for v in tf.compat.v1.global_variables()}
        grad_of = {v.op.name: g for g, v in grads_and_vars}
        bn_ops = {scope: find_batch_norm_op(graph, scope) for scope in case["batch_norms"]}
        if len(update_ops) - 1 != sum(1 for v in model_vars if v.op.name.endswith("moving_mean")) * 2:
            raise AssertionError("expected two UPDATE_OPS per batch norm")

        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            initial = mpf.set_pattern_weights(tf, sess, model_vars)
            facts = {}
            if case["optimizer"] == "rmsprop":
                rms = sess.run(optimizer.get_slot(by_name[case["weights"][0]], "rms"))
                if not np.all(rms == 1.0):
                    raise AssertionError("RMSProp's ms slot does not start at 1")
                facts["rmsprop_ms_slot_initial_value"] = 1.0
            case_dir = os.path.join(out_dir, case["name"])
            mpf.fresh_dir(case_dir)
            steps = []
            first = {}
            per_step = []
            for step in range(case["steps"]):
                fetch = {
                    "total": train_tensor, "cross_entropy": clone_loss, "regularization": regularization_loss,
                    "lr": lr, "global_step_before": global_step,
                    "grads": {n: grad_of[n] for n in case["weights"] + [s + "/beta" for s in case["batch_norms"]]},
                    "bn": {s: (op.inputs[0], op.outputs[1], op.outputs[2]) for s, op in bn_ops.items()},
                }
                out = sess.run(fetch)
                steps.append({"step": step, "global_step_before": int(out["global_step_before"]),
                              "loss": float(out["total"]), "cross_entropy": float(out["cross_entropy"]),
                              "regularization": float(out["regularization"]), "learning_rate": float(out["lr"])})
                if step == 0:
                    first = out
                per_step.append(out)
            if int(sess.run(global_step)) != case["steps"]:
                raise AssertionError("global step did not advance")

            # Bessel: the batch variance fused batch norm reports vs the biased variance of its input.
            ratios = []
            for scope, (bn_input, _, batch_var) in first["bn"].items():
                flat = bn_input.reshape(-1, bn_input.shape[-1]).astype(np.float64)
                n = flat.shape[0]
                biased = flat.var(axis=0)
                ratio = float(np.median(batch_var / biased))
                ratios.append((scope, n, ratio))
                if abs(ratio - n / (n - 1.0)) > 1e-4 * n / (n - 1.0):
                    raise AssertionError("%s: batch variance / biased variance = %r, n/(n-1) = %r"
                                         % (scope, ratio, n / (n - 1.0)))
            facts["fused_batch_norm_variance_for_moving_average"] = "unbiased: n/(n-1) * biased (checked)"
            facts["bessel_ratios"] = [{"scope": s, "n": n, "ratio": r} for s, n, r in ratios]

            entries = []
            slot_names = optimizer.get_slot_names()
            for name in case["weights"]:
                v = by_name[name]
                entry = {"name": name, "shape": v.shape.as_list(), "role": name.rsplit("/", 1)[-1]}
                entry["grad"] = save_samples(case_dir, safe(name) + ".grad.npy", first["grads"][name])
                entry["grad_steps"] = [entry["grad"]] + [
                    save_samples(case_dir, safe(name) + ".grad.step%d.npy" % k, per_step[k]["grads"][name])
                    for k in range(1, len(per_step))]
                entry["value"] = save_samples(case_dir, safe(name) + ".value.npy", sess.run(v))
                entry["slots"] = {}
                for slot in sorted(slot_names):
                    var = optimizer.get_slot(v, slot)
                    entry["slots"][var.op.name] = save_samples(case_dir, safe(var.op.name) + ".npy", sess.run(var))
                entries.append(entry)
            bn_entries = []
            for scope in case["batch_norms"]:
                beta = by_name[scope + "/beta"]
                _, batch_mean, batch_var = first["bn"][scope]
                e = {"scope": scope, "channels": int(beta.shape[0]),
                     "beta_grad": save_samples(case_dir, safe(scope) + ".beta.grad.npy", first["grads"][scope + "/beta"]),
                     "beta_grad_steps": [save_samples(case_dir, safe(scope) + ".beta.grad.step%d.npy" % k,
                                                      per_step[k]["grads"][scope + "/beta"]) for k in range(1, len(per_step))],
                     "batch_mean_steps": [save_samples(case_dir, safe(scope) + ".batch_mean.step%d.npy" % k,
                                                       per_step[k]["bn"][scope][1]) for k in range(1, len(per_step))],
                     "batch_variance_steps": [save_samples(case_dir, safe(scope) + ".batch_variance.step%d.npy" % k,
                                                           per_step[k]["bn"][scope][2]) for k in range(1, len(per_step))],
                     "beta_value": save_samples(case_dir, safe(scope) + ".beta.value.npy", sess.run(beta)),
                     "batch_mean": save_samples(case_dir, safe(scope) + ".batch_mean.npy", batch_mean),
                     "batch_variance": save_samples(case_dir, safe(scope) + ".batch_variance.npy", batch_var),
                     "moving_mean": save_samples(case_dir, safe(scope) + ".moving_mean.npy",
                                                 sess.run(by_name[scope + "/moving_mean"])),
                     "moving_variance": save_samples(case_dir, safe(scope) + ".moving_variance.npy",
                                                     sess.run(by_name[scope + "/moving_variance"])),
                     "beta_slots": {}}
                for slot in sorted(slot_names):
                    var = optimizer.get_slot(beta, slot)
                    e["beta_slots"][var.op.name] = save_samples(case_dir, safe(var.op.name) + ".npy", sess.run(var))
                bn_entries.append(e)
            extra = {}
            if case["optimizer"] == "adam":
                b1, b2 = optimizer._get_beta_accumulators()
                extra = {"beta1_power": float(sess.run(b1)), "beta2_power": float(sess.run(b2))}

    manifest = {
        "case": case["name"],
        "generator": {"script": "scripts/make_training_fixtures.py", "tensorflow": tf.__version__,
                      "tf_slim": mpf._version("tf-slim"), "numpy": np.__version__,
                      "network": "tensorflow/models research/slim/nets/inception_v1.py (scripts/reference/nets)"},
        "model": {"num_classes": CLASSES, "global_pool": True, "is_training": True, "dropout_keep_prob": 1.0,
                  "batch_norm_decay": BATCH_NORM_DECAY, "batch_norm_epsilon": 0.001, "batch_norm_scale": False,
                  "weight_decay": WEIGHT_DECAY},
        "loss": {"label_smoothing": LABEL_SMOOTHING, "total": "cross_entropy + regularization"},
        "optimizer": {"kind": case["optimizer"], "learning_rate": LEARNING_RATE,
                      "decay": "fixed" if case["decay_steps"] is None else
                      {"kind": "exponential", "rate": 0.94, "steps": case["decay_steps"], "staircase": True},
                      "rmsprop_decay": 0.9, "momentum": 0.9, "epsilon": 1.0, "beta1": 0.9, "beta2": 0.999},
        "input_shape": [BATCH, HEIGHT, WIDTH, 3],
        "input_sum": mpf.exact_sum(x),
        "labels": label_values,
        "steps": steps,
        "facts": facts,
        "sampling": "all if n <= 4096; else 0..<512, n-512..<n, (j*2147483647) mod n for j in 0..<3072",
        "variables": entries,
        "batch_norms": bn_entries,
        "optimizer_globals": extra,
        "pattern": "docs/parity-fixtures.md (all model variables, including moving statistics, and the input)",
        "initial_variable_count": len(initial),
    }
    mpf.write_json(os.path.join(case_dir, "manifest.json"), manifest)
    return steps, facts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="fixtures directory (default: %(default)s)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tf, slim = mpf.import_tensorflow_and_slim()
    ref = mpf.import_reference_net()
    for case in CASES:
        steps, facts = run_case(tf, slim, ref, case, args.out)
        for s in steps:
            print("%-9s step %d: loss %.9g (cross-entropy %.9g, regularization %.9g), lr %.9g"
                  % (case["name"], s["step"], s["loss"], s["cross_entropy"], s["regularization"], s["learning_rate"]))
        for r in facts.get("bessel_ratios", []):
            print("  %s: n=%d, batch variance / biased = %.7f (n/(n-1) = %.7f)"
                  % (r["scope"], r["n"], r["ratio"], r["n"] / (r["n"] - 1.0)))
    print("fixtures: %s, %.1f KiB" % (args.out, mpf.du(args.out) / 1024.0))


if __name__ == "__main__":
    main()
