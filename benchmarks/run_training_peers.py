#!/usr/bin/env python3
"""Side-by-side CPU training-step benchmark: this package's `inception bench --train` against
TF-slim's own training step for Inception V1, on the same machine, in one run.

What it does (see benchmarks/README.md for the why):
  1. For each configuration (the issue's anchors: batch 32 at 224x224; batch 32 at 112x112 with a
     global pool), for each round: TF-slim in a worker subprocess and `inception bench --train` as a
     subprocess, alternately (the order flips every round), so that machine noise hits both alike
     and peak RSS (ru_maxrss) is measured per process.
  2. TF-slim side: the real slim `inception_v1` (tensorflow/models research/slim, vendored in
     scripts/reference/nets) built by scripts/make_training_fixtures.py's build_training_step, as
     train_image_classifier.py does: inception_v1_arg_scope (weight decay 4e-5, batch norm decay
     0.9997, epsilon 0.001), is_training=True, dropout keep 0.8, 1001 classes, softmax cross-entropy
     + regularization losses, RMSProp (decay 0.9, momentum 0.9, epsilon 1.0, lr 0.01), UPDATE_OPS
     grouped with the train op. tf.compat.v1 graph mode, one Session (intra-op T, inter-op 1), a
     random batch held in a non-trainable variable (no feed per step); each sess.run of the train
     op is timed after warm-up.
  3. Our side: `inception bench --train --batch-size B --image-size H W [--global-pool]
     --iterations K --warmup W --threads T --json` (RMSProp with the same settings, batch-norm
     updates, weight decay, dropout keep 0.8, random data in memory).
  4. Waits for a quiet machine and records how much CPU other processes used (from /proc/stat),
     prints a table with medians and ratios and writes a markdown report (benchmarks/TRAINING.md).

Usage (from the repo root, after `swift build -c release --product inception`):
  python3 benchmarks/run_training_peers.py                      # --rounds 3 --iterations 10 --warmup 3
  python3 benchmarks/run_training_peers.py --quick              # smoke test: tiny sizes, no report
  python3 benchmarks/run_training_peers.py --configs 112 --rounds 5 --markdown /tmp/T.md
Worker mode (used by the script itself; prints JSON on stdout):
  run_training_peers.py --tf-worker --batch-size B --image-size H W [--global-pool]
                        --iterations K --warmup W --threads T
"""

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run_peers as rp  # noqa: E402  (quiet-machine wait, /proc/stat accounting, worker JSON, machine info)

REPO = rp.REPO
NUM_CLASSES = 1001
DROPOUT_KEEP = 0.8
LEARNING_RATE = 0.01
NOISY_SHARE = rp.NOISY_SHARE

# The configurations and anchors (TF-slim 2.21 on this machine, as quoted in the issue).
CONFIGS = {
    "224": dict(batch=32, height=224, width=224, global_pool=False,
                anchor_ips=6.4, anchor_rss="2.34 GB"),
    "112": dict(batch=32, height=112, width=112, global_pool=True,
                anchor_ips=24.5, anchor_rss=None),
}
QUICK_CONFIGS = {
    "quick-64": dict(batch=4, height=64, width=64, global_pool=True, anchor_ips=None, anchor_rss=None),
    "quick-80": dict(batch=2, height=80, width=80, global_pool=True, anchor_ips=None, anchor_rss=None),
}
# Each engine's ratios are against the peer running the same network.
PEER_OF = {"tf-slim": "tf-slim", "ours": "tf-slim", "ours-direct": "tf-slim", "pytorch": "pytorch", "ours-tv": "pytorch",
           "tf-slim-bf16": "tf-slim-bf16", "ours-bf16": "tf-slim-bf16"}
TARGET_IPS_RATIO = 1.5        # ours images/s >= 1.5x TF-slim's, at both sizes
TARGET_RSS_224_BYTES = 1.5e9  # our peak RSS at 224 <= 1.5 GB
MIB = 1024.0 * 1024.0


def config_label(c):
    return f"batch {c['batch']}, {c['height']}x{c['width']}" + (", global pool" if c["global_pool"] else "")


# --------------------------------------------------------------------------------------------
# TF-slim worker (own process: its own peak RSS)
# --------------------------------------------------------------------------------------------

def cpu_seconds(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def tf_worker(args):
    # Before make_parity_fixtures is imported: it defaults oneDNN *off* (reference numbers); a speed
    # comparison uses TensorFlow as shipped (oneDNN on, TF's default on x86-64 Linux) unless asked.
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = args.tf_onednn
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    scripts = os.path.join(REPO, "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    import numpy as np
    import make_training_fixtures as mtf  # build_training_step; imports make_parity_fixtures as mtf.mpf
    rss_python = rp.peak_rss_mb()
    tf, slim = mtf.mpf.import_tensorflow_and_slim()
    ref = mtf.mpf.import_reference_net()
    rss_import = rp.peak_rss_mb()

    b, (h, w) = args.batch_size, args.image_size
    t0 = time.perf_counter()
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        # The batch lives in memory as a (non-trainable) variable: no feed, no host copy per step.
        images = tf.Variable(tf.random.uniform([b, h, w, 3], -1.0, 1.0), trainable=False, name="random_images")
        labels = tf.constant(np.random.default_rng(0).integers(0, NUM_CLASSES, b).astype(np.int32), name="labels")
        built = mtf.build_training_step(
            tf, slim, ref, images, labels, NUM_CLASSES, "rmsprop",
            lambda _: tf.constant(LEARNING_RATE, name="fixed_learning_rate"),
            dropout_keep_prob=DROPOUT_KEEP, label_smoothing=0.0, global_pool=args.global_pool)
        n_bn = sum(1 for v in tf.compat.v1.global_variables() if v.op.name.endswith("/moving_mean"))
        if len(built["update_ops"]) - 1 != 2 * n_bn or n_bn == 0:
            raise AssertionError(f"expected two UPDATE_OPS per batch norm ({n_bn} batch norms, "
                                 f"{len(built['update_ops']) - 1} update ops)")
        n_trainable = len(tf.compat.v1.trainable_variables())
        n_params = int(sum(np.prod(v.shape.as_list()) for v in tf.compat.v1.trainable_variables()))
        init = tf.compat.v1.global_variables_initializer()
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=1)
    if args.tf_bf16:
        # TF's own mixed precision on CPU: grappler's oneDNN bfloat16 rewrite casts the
        # convolutions' (and matmuls') operands to bfloat16, keeping variables in float32.
        from tensorflow.core.protobuf import rewriter_config_pb2
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    losses = []
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        sess.run(init)
        setup_s = time.perf_counter() - t0
        train = built["train_tensor"]
        for _ in range(args.warmup):
            losses.append(float(sess.run(train)))
        cpu0, wall0 = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
        times = rp.time_loop(lambda: losses.append(float(sess.run(train))), 0, args.iterations)
        timed_cores = (cpu_seconds(resource.RUSAGE_SELF) - cpu0) / (time.perf_counter() - wall0)
        steps_done = int(sess.run(built["global_step"]))
    if steps_done != args.warmup + args.iterations:
        raise AssertionError(f"global step {steps_done}, expected {args.warmup + args.iterations}")
    if not all(np.isfinite(losses)):
        raise AssertionError(f"non-finite loss: {losses}")
    med = statistics.median(times)
    print(json.dumps({
        "engine": "tf-slim-bf16" if args.tf_bf16 else "tf-slim", "tensorflow": tf.__version__, "tf_slim": mtf.mpf._version("tf-slim"),
        "tf_keras": mtf.mpf._version("tf-keras"), "onednn_env": args.tf_onednn,
        "batch_size": b, "image_size": [h, w], "global_pool": args.global_pool, "threads": args.threads,
        "times_ms": times, "ms_per_step_median": med, "images_per_second": 1000.0 * b / med,
        "peak_rss_mb": rp.peak_rss_mb(), "rss_after_import_mb": rss_import, "rss_python_numpy_mb": rss_python,
        "setup_s": setup_s, "timed_cores": timed_cores, "trainable_variables": n_trainable, "trainable_parameters": n_params,
        "batch_norms": n_bn, "loss_first": losses[0], "loss_last": losses[-1],
    }))


def torch_worker(args):
    """torchvision's GoogLeNet training step in PyTorch (the issue's PyTorch anchor), written out
    with torch.nn: this machine's torchvision wheel does not load its C++ operators, and the
    network needs none of them. Same layers as torchvision.models.googlenet(aux_logits=True,
    init_weights=True): BasicConv2d = conv (no bias) + batch norm (eps 0.001) + ReLU, the "5x5"
    branch with a 3x3 kernel (torchvision's), ceil-mode max pools, two auxiliary classifiers
    (4x4 adaptive pool, 1x1 conv 128, fc 1024, dropout 0.7, fc), dropout 0.2 before the last fc,
    1000 classes; loss = CE(main) + 0.3 * (CE(aux1) + CE(aux2)) as torchvision's reference
    training script; RMSprop with slim's settings (as ours), weight decay 4e-5; channels_last."""
    import torch
    from torch import nn
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    rss_import = rp.peak_rss_mb()

    def conv(i, o, **kw):
        return nn.Sequential(nn.Conv2d(i, o, bias=False, **kw), nn.BatchNorm2d(o, eps=0.001), nn.ReLU(inplace=True))

    class Inception(nn.Module):
        def __init__(self, i, c1, c3r, c3, c5r, c5, pp):
            super().__init__()
            self.b1 = conv(i, c1, kernel_size=1)
            self.b2 = nn.Sequential(conv(i, c3r, kernel_size=1), conv(c3r, c3, kernel_size=3, padding=1))
            self.b3 = nn.Sequential(conv(i, c5r, kernel_size=1), conv(c5r, c5, kernel_size=3, padding=1))
            self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), conv(i, pp, kernel_size=1))

        def forward(self, x):
            return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)

    class Aux(nn.Module):
        def __init__(self, i, classes):
            super().__init__()
            self.conv = conv(i, 128, kernel_size=1)
            self.fc1, self.fc2 = nn.Linear(2048, 1024), nn.Linear(1024, classes)

        def forward(self, x):
            x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
            return self.fc2(F.dropout(F.relu(self.fc1(x), inplace=True), 0.7, self.training))

    class GoogLeNet(nn.Module):
        def __init__(self, classes=1000):
            super().__init__()
            pool = lambda k=3: nn.MaxPool2d(k, stride=2, ceil_mode=True)  # noqa: E731
            self.stem = nn.Sequential(conv(3, 64, kernel_size=7, stride=2, padding=3), pool(),
                                      conv(64, 64, kernel_size=1), conv(64, 192, kernel_size=3, padding=1), pool())
            self.i3 = nn.Sequential(Inception(192, 64, 96, 128, 16, 32, 32), Inception(256, 128, 128, 192, 32, 96, 64), pool())
            self.i4a = Inception(480, 192, 96, 208, 16, 48, 64)
            self.i4bcd = nn.Sequential(Inception(512, 160, 112, 224, 24, 64, 64), Inception(512, 128, 128, 256, 24, 64, 64),
                                       Inception(512, 112, 144, 288, 32, 64, 64))
            self.i4e = nn.Sequential(Inception(528, 256, 160, 320, 32, 128, 128), pool(2))
            self.i5 = nn.Sequential(Inception(832, 256, 160, 320, 32, 128, 128), Inception(832, 384, 192, 384, 48, 128, 128))
            self.aux1, self.aux2 = Aux(512, classes), Aux(528, classes)
            self.fc = nn.Linear(1024, classes)
            for m in self.modules():  # torchvision's init_weights
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

        def forward(self, x):
            x = self.i4a(self.i3(self.stem(x)))
            a1 = self.aux1(x)
            x = self.i4bcd(x)
            a2 = self.aux2(x)
            x = self.i5(self.i4e(x))
            x = F.dropout(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1), 0.2, self.training)
            return self.fc(x), a2, a1

    b, (h, w) = args.batch_size, args.image_size
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = GoogLeNet().to(memory_format=torch.channels_last).train()
    params = list(model.parameters())
    decay = [p for p in params if p.dim() > 1]
    others = [p for p in params if p.dim() <= 1]
    opt = torch.optim.RMSprop([{"params": decay, "weight_decay": 4e-5}, {"params": others, "weight_decay": 0.0}],
                              lr=LEARNING_RATE, alpha=0.9, eps=1.0, momentum=0.9)
    images = (torch.rand(b, 3, h, w) * 2 - 1).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (b,), generator=torch.Generator().manual_seed(0))
    setup_s = time.perf_counter() - t0
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        out, a2, a1 = model(images)
        loss = F.cross_entropy(out, labels) + 0.3 * (F.cross_entropy(a1, labels) + F.cross_entropy(a2, labels))
        loss.backward()
        opt.step()
        losses.append(loss.item())

    for _ in range(args.warmup):
        step()
    cpu0, wall0 = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
    times = rp.time_loop(step, 0, args.iterations)
    timed_cores = (cpu_seconds(resource.RUSAGE_SELF) - cpu0) / (time.perf_counter() - wall0)
    if not all(math.isfinite(v) for v in losses):
        raise AssertionError(f"non-finite loss: {losses}")
    med = statistics.median(times)
    print(json.dumps({
        "engine": "pytorch", "torch": torch.__version__, "batch_size": b, "image_size": [h, w],
        "threads": args.threads, "times_ms": times, "ms_per_step_median": med, "images_per_second": 1000.0 * b / med,
        "peak_rss_mb": rp.peak_rss_mb(), "rss_after_import_mb": rss_import, "setup_s": setup_s,
        "timed_cores": timed_cores, "trainable_parameters": int(sum(p.numel() for p in params)),
        "loss_first": losses[0], "loss_last": losses[-1],
    }))


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

def software_info(binary):
    def version(dist):
        try:
            from importlib.metadata import version as v
            return v(dist)
        except Exception:
            return "?"
    return {
        "tensorflow": version("tensorflow-cpu") if version("tensorflow-cpu") != "?" else version("tensorflow"),
        "tf_slim": version("tf-slim"), "tf_keras": version("tf-keras"), "numpy": version("numpy"),
        "python": platform.python_version(),
        "swift": rp.sh("swift --version 2>&1 | head -1") or "(swift not on PATH)",
        "commit": rp.sh(f"git -C {shlex.quote(REPO)} rev-parse --short HEAD") or "?",
        "dirty": bool(rp.sh(f"git -C {shlex.quote(REPO)} status --porcelain --untracked-files=no -- Sources Package.swift")),
        "binary_mtime": datetime.datetime.fromtimestamp(os.path.getmtime(binary)).strftime("%Y-%m-%d %H:%M:%S"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds per configuration (default 3; 1 with --quick)")
    ap.add_argument("--iterations", type=int, default=None, help="timed steps per engine per round (default 10; 2 with --quick)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first, both engines (default 3; 1 with --quick)")
    ap.add_argument("--threads", type=int, default=2, help="threads for both engines (default 2)")
    ap.add_argument("--configs", default=None,
                    help="comma-separated: 224 (batch 32, 224x224) and/or 112 (batch 32, 112x112, global pool); "
                         "default both (with --quick: quick-64,quick-80)")
    ap.add_argument("--binary", default=os.path.join(REPO, ".build/release/inception"))
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: tiny sizes (batch 4 at 64x64, batch 2 at 80x80, global pool), 1 round, "
                         "2 steps; writes no report unless --markdown is given")
    ap.add_argument("--markdown", default=None, metavar="OUT",
                    help="markdown report (default benchmarks/TRAINING.md; none with --quick; '' for none)")
    ap.add_argument("--raw-json", default="", help="also write every measurement here")
    ap.add_argument("--tf-onednn", choices=["1", "0"], default="1",
                    help="TF_ENABLE_ONEDNN_OPTS for the TF-slim worker (default 1: TensorFlow as shipped)")
    ap.add_argument("--ours-direct", action="store_true",
                    help="also time ours with --no-winograd (direct 3x3 training convolutions, the exact float32 "
                         "path) as engine ours-direct")
    ap.add_argument("--bf16", action="store_true",
                    help="also time mixed precision: TF-slim with grappler's oneDNN bfloat16 rewrite as engine "
                         "tf-slim-bf16, and ours with --bf16 as engine ours-bf16 (compared with each other)")
    ap.add_argument("--torch", action="store_true",
                    help="also time torchvision's GoogLeNet in PyTorch (needs torch) as engine pytorch, and ours on "
                         "the same network (`--model googlenet_torchvision`) as engine ours-tv")
    ap.add_argument("--load-threshold", type=float, default=1.2, help="wait while the 1-min load is above this")
    ap.add_argument("--max-wait", type=float, default=600,
                    help="longest total wait for a quiet machine (before the run and between rounds), seconds")
    ap.add_argument("--quiet-cores", type=float, default=0.15,
                    help="before each round, wait while other processes use more than this many cores")
    # worker mode
    ap.add_argument("--tf-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tf-bf16", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--image-size", type=int, nargs=2, default=[224, 224], help=argparse.SUPPRESS)
    ap.add_argument("--global-pool", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.tf_worker or args.torch_worker:
        args.iterations = 10 if args.iterations is None else args.iterations
        args.warmup = 3 if args.warmup is None else args.warmup
        return tf_worker(args) if args.tf_worker else torch_worker(args)

    quick = args.quick
    args.rounds = args.rounds if args.rounds is not None else (1 if quick else 3)
    args.iterations = args.iterations if args.iterations is not None else (2 if quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    if args.markdown is None:
        args.markdown = "" if quick else os.path.join(REPO, "benchmarks", "TRAINING.md")
    table_of = QUICK_CONFIGS if quick else CONFIGS
    names = [c.strip() for c in (args.configs or ",".join(table_of)).split(",") if c.strip()]
    every = {**CONFIGS, **QUICK_CONFIGS}
    unknown = [n for n in names if n not in every]
    if unknown:
        sys.exit(f"unknown configuration(s) {unknown}: choose from {', '.join(every)}")
    configs = [(n, every[n]) for n in names]

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"no binary at {binary}: build it with `swift build -c release --product inception`")
    tmp = tempfile.TemporaryDirectory(prefix="run_training_peers_")
    # Benchmark a private copy: other builds in this tree may relink .build/release/inception mid-run.
    binary_src, binary = binary, os.path.join(tmp.name, "inception")
    shutil.copy2(binary_src, binary)
    with open(binary, "rb") as f:
        binary_sha = hashlib.sha256(f.read()).hexdigest()[:16]
    print(f"binary: {binary_src} (sha256 {binary_sha}..., built "
          f"{datetime.datetime.fromtimestamp(os.path.getmtime(binary)):%Y-%m-%d %H:%M:%S}) copied to {binary}")
    me = os.path.abspath(__file__)
    py = sys.executable
    sw = software_info(binary)
    sw["binary_sha"] = binary_sha
    sw["binary_src"] = (os.path.relpath(binary_src, REPO) if binary_src.startswith(REPO + os.sep)
                        else binary_src)

    la_before, waited = rp.wait_for_quiet(args.load_threshold, args.max_wait)
    print(f"load average before the run: {la_before[0]:.2f} {la_before[1]:.2f} {la_before[2]:.2f}"
          f" (waited {waited:.0f}s)")

    def cmd_for(engine, c):
        size = ["--image-size", str(c["height"]), str(c["width"])] + (["--global-pool"] if c["global_pool"] else [])
        common = ["--batch-size", str(c["batch"])] + size + ["--iterations", str(args.iterations),
                                                             "--warmup", str(args.warmup), "--threads", str(args.threads)]
        if engine == "tf-slim":
            return [py, me, "--tf-worker"] + common + ["--tf-onednn", args.tf_onednn]
        if engine == "tf-slim-bf16":
            return [py, me, "--tf-worker", "--tf-bf16"] + common + ["--tf-onednn", "1"]
        if engine == "pytorch":
            return [py, me, "--torch-worker"] + common
        ours = [binary, "bench", "--train"] + common + ["--json"]
        if engine == "ours-tv":
            return ours + ["--model", "googlenet_torchvision", "--num-classes", "1000"]
        return ours + (["--no-winograd"] if engine == "ours-direct" else ["--bf16"] if engine == "ours-bf16" else [])

    # "ours-direct": direct 3x3 training convolutions (`inception train --no-winograd`).
    # "pytorch" / "ours-tv": torchvision's GoogLeNet in PyTorch and in ours (compared with each other).
    engines = (["tf-slim", "ours"] + (["ours-direct"] if args.ours_direct else [])
               + (["tf-slim-bf16", "ours-bf16"] if args.bf16 else [])
               + (["pytorch", "ours-tv"] if args.torch else []))
    results = {(e, n): [] for e in engines for n, _ in configs}
    loads, errors, round_waits = [], [], []
    t_start, busy0, own0 = time.time(), rp.cpu_busy_seconds(), rp.own_cpu_seconds()
    for n, c in configs:
        for r in range(args.rounds):
            f, w = rp.wait_for_quiet_window(args.quiet_cores, max(0.0, args.max_wait - waited - sum(round_waits)))
            round_waits.append(w)
            if w >= 1:
                print(f"  waited {w:.0f}s for a quiet window (others at {f:.2f} cores)", flush=True)
            loads.append(rp.loadavg()[0])
            order = engines if r % 2 == 0 else engines[::-1]
            for pos, e in enumerate(order):
                t0, cpu0 = time.time(), cpu_seconds(resource.RUSAGE_CHILDREN)
                try:
                    out, fc = rp.foreign_cores(lambda: rp.run_json(cmd_for(e, c)))
                except Exception as ex:  # keep going: report it
                    errors.append(f"{e} {n} round {r + 1}: {ex}")
                    print("ERROR", errors[-1])
                    continue
                out["foreign_cores"], out["wall_s"], out["position"] = fc, time.time() - t0, pos
                # CPU time of the engine's process (through its `sh -c` parent) over its wall time.
                out["process_cores"] = (cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0) / out["wall_s"]
                results[(e, n)].append(out)
                ms = out["ms_per_step_median"]
                print(f"{n} round {r + 1}/{args.rounds} {e:8s} {ms:9.1f} ms/step {1000.0 * c['batch'] / ms:7.2f} images/s "
                      f"peak RSS {out['peak_rss_mb']:7.1f} MB  ({out['wall_s']:.0f}s at {out['process_cores']:.2f} cores; "
                      f"load {loads[-1]:.2f}, "
                      f"others {fc:.2f} cores)", flush=True)
    wall = time.time() - t_start
    foreign = max(0.0, (rp.cpu_busy_seconds() - busy0) - (rp.own_cpu_seconds() - own0))
    ncpu = os.cpu_count() or 1
    la_after = rp.loadavg()

    # Summary: median over rounds of each round's median step time (the same statistic for both
    # sides; `inception bench` reports per-run medians), peak RSS = max over rounds.
    summary = {}
    for (e, n), outs in results.items():
        if not outs:
            continue
        b = every[n]["batch"]
        meds = [o["ms_per_step_median"] for o in outs]
        ms = statistics.median(meds)
        s = {"ms_per_step": ms, "ips": 1000.0 * b / ms, "rss": max(o["peak_rss_mb"] for o in outs),
             "round_medians": meds, "round_foreign": [o["foreign_cores"] for o in outs],
             "round_ips": [1000.0 * b / m for m in meds], "wall": [o["wall_s"] for o in outs],
             "process_cores": statistics.median(o["process_cores"] for o in outs)}
        if "times_ms" in outs[0]:
            s["pooled_median"] = statistics.median([t for o in outs for t in o["times_ms"]])
            s["rss_after_import"] = max(o["rss_after_import_mb"] for o in outs)
            s["setup_s"] = statistics.median(o["setup_s"] for o in outs)
            s["params"] = outs[0]["trainable_parameters"]
            s["timed_cores"] = statistics.median(o["timed_cores"] for o in outs)
        summary[(e, n)] = s

    hdr = ["configuration", "engine", "ms/step (median)", "images/s", "peak RSS MB", "images/s vs peer",
           "peak RSS vs peer"]
    table, rows = [hdr], []
    for n, c in configs:
        for e in engines:
            s = summary.get((e, n))
            if not s:
                continue
            base = summary.get((PEER_OF[e], n))
            ri = s["ips"] / base["ips"] if base else float("nan")
            rr = s["rss"] / base["rss"] if base else float("nan")
            rows.append((n, e, s, ri, rr))
            table.append([f"{n}: {config_label(c)}", e, rp.fmt(s["ms_per_step"], 1), rp.fmt(s["ips"]),
                          rp.fmt(s["rss"], 1), rp.fmt(ri, 2) + "x", rp.fmt(rr, 2) + "x"])
    widths = [max(len(r[i]) for r in table) for i in range(len(hdr))]
    print()
    for i, r in enumerate(table):
        print("  ".join(x.rjust(widths[j]) if j > 1 else x.ljust(widths[j]) for j, x in enumerate(r)))
        if i == 0:
            print("  ".join("-" * w for w in widths))

    targets = []
    for n in ("224", "112"):
        if ("ours", n) in summary and ("tf-slim", n) in summary:
            v = summary[("ours", n)]["ips"] / summary[("tf-slim", n)]["ips"]
            targets.append((f"{n}: ours (default, float32 Winograd 3x3) images/s >= 1.5x TF-slim ({config_label(CONFIGS[n])})", f"{v:.2f}x",
                            v >= TARGET_IPS_RATIO))
    for n in ("224", "112"):
        if ("ours-tv", n) in summary and ("pytorch", n) in summary:
            v = summary[("ours-tv", n)]["ips"] / summary[("pytorch", n)]["ips"]
            targets.append((f"{n}: ours images/s > PyTorch's on torchvision's GoogLeNet ({config_label(CONFIGS[n])})",
                            f"{v:.2f}x", v > 1.0))
    for n in ("224", "112"):
        if ("ours-direct", n) in summary and ("tf-slim", n) in summary:
            v = summary[("ours-direct", n)]["ips"] / summary[("tf-slim", n)]["ips"]
            targets.append((f"{n}: ours-direct (--no-winograd, direct float32) images/s >= 1.5x TF-slim float32 "
                            f"({config_label(CONFIGS[n])})", f"{v:.2f}x", v >= TARGET_IPS_RATIO))
    for n in ("224", "112"):
        if ("ours-bf16", n) in summary and ("tf-slim", n) in summary:
            v = summary[("ours-bf16", n)]["ips"] / summary[("tf-slim", n)]["ips"]
            targets.append((f"{n}: ours-bf16 (opt-in mixed precision) images/s >= 1.5x TF-slim float32 "
                            f"({config_label(CONFIGS[n])})", f"{v:.2f}x", v >= TARGET_IPS_RATIO))
    if ("ours", "224") in summary:
        v = summary[("ours", "224")]["rss"]
        targets.append(("224: our peak RSS <= 1.5 GB (1.5e9 bytes = 1430.5 MB)", f"{v:.1f} MB ({v * MIB / 1e9:.2f} GB)",
                        v * MIB <= TARGET_RSS_224_BYTES))
    print()
    for name, val, ok in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {val}")
    share = foreign / max(wall * ncpu, 1e-9)
    print(f"\nrun time {wall:.0f}s; load average (1 min) at round starts: {min(loads):.2f}..{max(loads):.2f}; "
          f"before {la_before[0]:.2f}, after {la_after[0]:.2f}; CPU used by other processes during the run: "
          f"{foreign:.1f} s of {wall * ncpu:.0f} core-s ({100 * share:.1f}%)")
    for e in errors:
        print("ERROR:", e)

    if args.raw_json:
        with open(args.raw_json, "w") as f:
            json.dump({"results": {f"{e}/{n}": v for (e, n), v in results.items()},
                       "load": {"before": la_before, "after": la_after, "rounds": loads, "foreign_cpu_s": foreign,
                                "core_seconds": wall * ncpu, "wall_s": wall}}, f)

    if args.markdown:
        cmdline = "python3 " + shlex.join([os.path.relpath(me, REPO)] + sys.argv[1:])
        engine_cmds = {n: [" ".join(x if x.startswith("$TMP/") else shlex.quote(x) for x in rp._rel(cmd_for(e, c)))
                           for e in engines] for n, c in configs}
        load = {"before": la_before, "after": la_after, "rounds": loads, "waited": waited, "round_waits": round_waits,
                "foreign": foreign, "core_seconds": wall * ncpu, "wall": wall}
        write_report(args.markdown, table, rows, summary, targets, configs, rp.machine_info(), sw, args, cmdline,
                     engine_cmds, load, errors, results)
        print(f"wrote {args.markdown}")


def write_report(path, table, rows, summary, targets, configs, m, sw, args, cmdline, engine_cmds, load, errors,
                 results):
    def md_table(t):
        lines = ["| " + " | ".join(t[0]) + " |",
                 "|" + "|".join("---" if i < 2 else "---:" for i in range(len(t[0]))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in t[1:]]
        return "\n".join(lines)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    share = load["foreign"] / max(load["core_seconds"], 1e-9)
    L = []
    L.append("# Training-step benchmark: `inception` vs TF-slim"
             + (" and PyTorch" if args.torch else "") + " (CPU, same machine)\n")
    L.append(f"Measured {now} by `benchmarks/run_training_peers.py` in one run, the engines alternating round by "
             f"round (the order flips every round), {args.rounds} round(s) x {args.iterations} timed training steps "
             f"after {args.warmup} warm-up step(s), per engine and configuration, **{args.threads} threads** for every engine. "
             f"Run time {load['wall'] / 60:.1f} min. A step is forward + backward + RMSProp update + batch-norm moving "
             "averages on one random batch held in memory. Higher images/s is better; a ratio above 1x in "
             "*images/s vs peer* means we are faster, below 1x in *peak RSS vs peer* that we use less memory. "
             "The peer is the engine that runs the same network: TF-slim for `inception_v1` (ours, ours-direct)"
             + (", TF-slim with its bfloat16 rewrite for ours-bf16" if args.bf16 else "")
             + (", PyTorch for torchvision's GoogLeNet (ours-tv)" if args.torch else "") + ".\n")
    if share > NOISY_SHARE:
        L.append(f"> **Noisy run.** Other processes used {100 * share:.0f}% of the machine's CPU time during this run "
                 f"(1-minute load {min(load['rounds']):.2f}..{max(load['rounds']):.2f} at the round starts, after "
                 f"waiting {load['waited'] + sum(load['round_waits']):.0f} s for a quiet machine), so both engines "
                 "got fewer cores than they asked for. The ratios are indicative only; rerun on a quiet machine "
                 "before judging the targets.\n")
    if args.rounds < 3 or args.iterations < 10:
        L.append(f"> **Short run** ({args.rounds} round(s) x {args.iterations} steps): few samples per median; "
                 "the defaults are 3 rounds x 10 steps after 3 warm-up steps.\n")
    L.append(md_table(table) + "\n")
    L.append("MB = MiB (`ru_maxrss` / 1024). images/s = 1000·batch / (median ms/step).\n")
    if targets:
        L.append("## Targets (from the issue)\n")
        L.append("| target | measured | |\n|---|---:|---|")
        for name, val, ok in targets:
            L.append(f"| {name} | {val} | {'met' if ok else '**not met**'} |")
        L.append("")
    anchors = [(n, c) for n, c in configs if c.get("anchor_ips")]
    if anchors:
        L.append("## TF-slim here vs the issue's anchors\n")
        L.append("The issue quotes TF-slim 2.21 on this machine without its settings. TF-slim's speed depends "
                 "strongly on TensorFlow's oneDNN kernels (`TF_ENABLE_ONEDNN_OPTS`; this run: "
                 + ("1, oneDNN on, as shipped" if args.tf_onednn == "1" else "0, oneDNN off, Eigen kernels")
                 + "; `--tf-onednn " + ("0" if args.tf_onednn == "1" else "1") + "` measures the other), and on the "
                 "load: a run on a shared machine is slower than a quiet one.\n")
        L.append("| configuration | issue's anchor | this run |\n|---|---:|---:|")
        for n, c in anchors:
            s = summary.get(("tf-slim", n))
            got = f"{s['ips']:.2f} images/s, {s['rss']:.0f} MB" if s else "–"
            want = f"{c['anchor_ips']} images/s" + (f", {c['anchor_rss']} peak" if c["anchor_rss"] else "")
            L.append(f"| {n}: {config_label(c)} | {want} | {got} |")
        L.append("")
    L.extend(rp.conditions_lines(m, load, args))
    L.append("")
    L.append("## Software\n")
    L.append(f"- ours: `inception`, tree at commit {sw['commit']}"
             f"{' (+ uncommitted changes in Sources/)' if sw['dirty'] else ''} when the run started, binary "
             f"`{sw['binary_src']}` built {sw['binary_mtime']} (sha256 {sw['binary_sha']}…, copied aside for the run), "
             f"`swift build -c release --product inception`, {sw['swift']}")
    L.append(f"- TF-slim: TensorFlow {sw['tensorflow']} (PyPI `tensorflow-cpu`), tf-slim {sw['tf_slim']}, "
             f"tf-keras {sw['tf_keras']} (tf.layers' batch norm), numpy {sw['numpy']}, Python {sw['python']}; "
             f"`TF_ENABLE_ONEDNN_OPTS={args.tf_onednn}` "
             + ("(oneDNN on: TensorFlow as shipped on x86-64 Linux)" if args.tf_onednn == "1" else "(oneDNN off: Eigen kernels)"))
    L.append("")
    L.append("## Method\n")
    L.append("- **TF-slim**: the real `inception_v1` of tensorflow/models research/slim (vendored in "
             "`scripts/reference/nets`, see its README), built by `build_training_step` in "
             "`scripts/make_training_fixtures.py` (the step the training fixtures come from) as "
             "`train_image_classifier.py` + `model_deploy.py` build it: `inception_v1_arg_scope()` (weight decay "
             "4e-5, batch norm decay 0.9997, epsilon 0.001, fused batch norm, no gamma), `is_training=True`, "
             f"dropout keep {DROPOUT_KEEP}, {NUM_CLASSES} classes, `tf.losses.softmax_cross_entropy` on one-hot "
             "labels (label smoothing 0, slim's default) + `add_n(regularization losses)`, "
             "`RMSPropOptimizer(0.01, decay=0.9, momentum=0.9, epsilon=1.0)` (slim's defaults; a fixed learning "
             "rate instead of the exponential decay, which costs nothing), `compute_gradients` over the trainable "
             "variables, `apply_gradients(global_step)` grouped with the UPDATE_OPS (two per batch norm, checked), "
             "`train_tensor = identity(total_loss)` under that group. tf.compat.v1 graph mode, one `Session` with "
             f"intra_op_parallelism_threads {args.threads} and inter_op_parallelism_threads 1. The batch is random "
             "uniform [-1, 1] in a non-trainable variable (initialised once; no feed per step), labels a constant. "
             "Timed with `time.perf_counter` around each `sess.run(train_tensor)` after the warm-up steps, in its "
             "own worker process (`run_training_peers.py --tf-worker`); the worker checks that the global step "
             "advanced once per step and that the losses are finite. tf-slim 1.1.0 runs on TensorFlow 2.21 "
             "through the `tf_keras.legacy_tf_layers` module alias of `scripts/make_parity_fixtures.py`.")
    L.append("- **ours**: `inception bench --train … --threads T --json` as a subprocess: slim's initialisation, "
             "RMSProp with the same settings (lr 0.01 fixed, decay 0.9, momentum 0.9, epsilon 1.0, mean-square slot "
             "starting at 1 as TF1's), weight decay 4e-5, batch-norm moving averages (decay 0.9997), dropout keep "
             "0.8, label smoothing 0, a random batch in [-1, 1] and random labels in memory; its own per-step timer "
             "after `--warmup` untimed steps. The step's maths matches TF-slim's "
             "(Tests/InceptionTrainingTests, fixtures from `scripts/make_training_fixtures.py`).")
    if args.ours_direct:
        L.append("- **ours-direct**: the same with `--no-winograd`: every convolution direct (float32 GEMM), the "
                 "path the library's `Trainer` takes by default and the TF-slim training parity tests check "
                 "(gradients ~2e-5 from TF-slim's on the parity network). **ours**, the command's default, runs the "
                 "3x3 stride-1 convolutions' forward, input gradient and weight gradient as float32 Winograd "
                 "F(4x4, 3x3) (F(2x2) on small grids, direct on the smallest layers): 4x fewer products, float32 "
                 "arithmetic, a different rounding (trained-network weight gradients ~1e-4 from the direct path's).")
    if args.bf16:
        L.append("- **tf-slim-bf16**: the same TF-slim step with TensorFlow's own CPU mixed precision: the session's "
                 "grappler option `auto_mixed_precision_onednn_bfloat16` rewrites the convolutions and matrix "
                 "products (and the element-wise work between them) to bfloat16, variables stay float32.")
        L.append("- **ours-bf16**: ours with `--bf16` (opt-in): every convolution's forward, input gradient and weight "
                 "gradient take operands rounded to bfloat16 with float32 sums (AVX512-BF16); activations, batch "
                 "norm and the optimizer stay float32. Its peer is tf-slim-bf16; the 1.5x-TF-slim line above "
                 "compares it with TF-slim's float32 step, as the issue's target is stated.")
    if args.torch:
        tv = next((o.get("torch") for (e, _), outs in results.items() if e == "pytorch" for o in outs), "?")
        L.append(f"- **pytorch**: PyTorch {tv} (CPU), torchvision's GoogLeNet written out with `torch.nn` in "
                 "`run_training_peers.py --torch-worker` (this machine's torchvision wheel does not load its C++ "
                 "operators; the network uses none): the same layers, initialisation and auxiliary classifiers as "
                 "`torchvision.models.googlenet(aux_logits=True, init_weights=True)`, 1000 classes, loss = "
                 "CE(main) + 0.3·(CE(aux1) + CE(aux2)) as torchvision's reference training script, `RMSprop(lr "
                 "0.01, alpha 0.9, eps 1.0, momentum 0.9)` with weight decay 4e-5 on conv/fc weights, model and "
                 f"batch in `channels_last`, `torch.set_num_threads({args.threads})`, one inter-op thread; each "
                 "step (zero_grad, forward, loss, backward, step) timed after the warm-up steps.")
        L.append("- **ours-tv**: `inception bench --train --model googlenet_torchvision --num-classes 1000 …`: the "
                 "same network (torchvision's layout, auxiliary classifiers weighted 0.3), RMSProp as in *ours*.")
    L.append("- Statistic: for each engine and round the median of its timed steps; the table shows the median of "
             "those round medians (the same statistic for both, since `inception bench` reports per-run medians). "
             "Peak RSS: `ru_maxrss` of the engine's own process (launched through `sh -c` so it does not inherit "
             "the script's high-water mark), max over rounds; for TF-slim it includes the interpreter, numpy and "
             "TensorFlow (see *RSS after import* below).")
    L.append("")
    L.append("## Per-round medians (ms/step)\n")
    L.append("In brackets: CPU used by other processes while that engine ran, in % of one core "
             f"(the machine has {m['cpus']} CPUs; each engine uses {args.threads} threads). "
             "Rounds with a large share are the noisy ones. *process cores*: the engine process's CPU time "
             "(user + system, from `RUSAGE_CHILDREN`) over its wall time, median over rounds, including start-up "
             "(for TF-slim: Python and TensorFlow import, graph build); *cores in timed steps*: the same inside "
             "the TF-slim worker over its timed steps only. On a shared machine an engine that keeps more threads "
             "runnable wins a larger share of the CPU, so compare these before reading the ratios.\n")
    det = [["configuration", "engine"] + [f"round {i + 1}" for i in range(args.rounds)]
           + ["pooled median", "process cores", "cores in timed steps", "RSS after import MB", "graph build + init s"]]
    for n, e, s, _, _ in rows:
        meds = [f"{v:.1f} ({100 * fc:.0f}%)" for v, fc in zip(s["round_medians"], s["round_foreign"])]
        meds += ["–"] * (args.rounds - len(meds))
        det.append([n, e] + meds + [rp.fmt(s["pooled_median"], 1) if "pooled_median" in s else "–",
                                    rp.fmt(s["process_cores"]),
                                    rp.fmt(s["timed_cores"]) if "timed_cores" in s else "–",
                                    rp.fmt(s["rss_after_import"], 1) if "rss_after_import" in s else "–",
                                    rp.fmt(s["setup_s"], 1) if "setup_s" in s else "–"])
    L.append(md_table(det) + "\n")
    if errors:
        L.append("## Errors during the run\n")
        L += [f"- {e}" for e in errors]
        L.append("")
    L.append("## Exact commands\n")
    L.append("```sh\nswift build -c release --product inception\npip install -r benchmarks/requirements.txt\n"
             + cmdline + "\n```\n")
    L.append("What the script runs per round (`$TMP/inception` is a copy of the binary taken at the start):\n")
    L.append("```sh\n" + "\n".join(x for n, _ in configs for x in engine_cmds[n]) + "\n```\n")
    with open(path, "w") as f:
        f.write("\n".join(L))


if __name__ == "__main__":
    main()
