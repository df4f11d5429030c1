#!/usr/bin/env python3
"""Side-by-side CPU inference benchmark: this package's `inception` CLI against ONNX Runtime
(and, optionally, TensorFlow) on the same machine, in one run, with the same weights.

What it does (see benchmarks/README.md for the why):
  1. Reads the weights: a TF-slim checkpoint is converted with `inception convert` to a temporary
     .safetensors file, which is read by a small parser below (or pass a .safetensors directly).
  2. Builds an ONNX model of TF-slim Inception V1 from those weights: batch norm folded into the
     conv weights and biases, TF SAME padding as explicit asymmetric pads, NCHW input.
  3. Checks it (and our binary, and optionally TF) against TF's reference logits; refuses to
     benchmark when ONNX Runtime's logits do not match.
  4. For each batch size, for each round: ONNX Runtime in a worker subprocess, then
     `inception bench` as a subprocess (then TF in a worker subprocess), so that machine noise hits
     every engine alike and peak RSS is measured per process for each.
  5. Prints a table and writes BENCHMARKS.md.

Usage (from the repo root, after `swift build -c release --product inception`):
  python3 benchmarks/run_peers.py                # defaults: --rounds 5 --iterations 30 --batches 1,8
  python3 benchmarks/run_peers.py --no-tf --rounds 3 --output /tmp/B.md
Worker modes (used by the script itself; printed JSON on stdout):
  run_peers.py --ort-worker MODEL.onnx --batch-size B --iterations K --warmup W --threads T
  run_peers.py --tf-worker WEIGHTS.safetensors --batch-size B --iterations K --warmup W --threads T
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPSILON = 0.001  # slim inception_arg_scope batch_norm_epsilon
IMAGE_SIZE = 224
OPSET = 17

# Issue targets ("Fast CPU inference: beat ONNX Runtime on the same machine, measured side by side").
TARGET_B1_MS_RATIO = 0.8      # batch 1: ours ms/image <= 0.8 x ORT
TARGET_B8_IPS_RATIO = 1.25    # batch 8: ours images/s >= 1.25 x ORT
TARGET_B8_RSS_MB = 150.0      # batch 8: our peak RSS <= 150 MB
NOISY_SHARE = 0.10            # report flags a run in which others used > 10% of the CPU time


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------

def read_safetensors(path):
    """Minimal safetensors reader: u64 LE header length, JSON header, raw little-endian data."""
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data, dtype=np.dtype(dtypes[info["dtype"]]).newbyteorder("<"),
                            count=(end - begin) // np.dtype(dtypes[info["dtype"]]).itemsize,
                            offset=base + begin)
        out[name] = arr.reshape(info["shape"]).astype(np.float32) if info["dtype"] != "I64" else arr
    return out


def load_weights(path, binary, tmpdir):
    """Returns (dict name -> array, path of the .safetensors actually used)."""
    if path.endswith(".safetensors"):
        return read_safetensors(path), path
    dst = os.path.join(tmpdir, "weights.safetensors")
    subprocess.run([binary, "convert", path, dst], check=True, stdout=subprocess.DEVNULL)
    return read_safetensors(dst), dst


def folded_conv(weights, scope):
    """Conv + batch norm (no gamma) folded: returns (HWIO weights, bias)."""
    p = "InceptionV1/" + scope
    w = weights[p + "/weights"].astype(np.float64)
    beta = weights[p + "/BatchNorm/beta"].astype(np.float64)
    mean = weights[p + "/BatchNorm/moving_mean"].astype(np.float64)
    var = weights[p + "/BatchNorm/moving_variance"].astype(np.float64)
    scale = 1.0 / np.sqrt(var + EPSILON)
    return (w * scale).astype(np.float32), (beta - mean * scale).astype(np.float32)


def same_pads(size, k, s):
    """TF SAME: out = ceil(in/s); total = max((out-1)*s + k - in, 0); before = total//2."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


# --------------------------------------------------------------------------------------------
# The network, once, over an "ops" backend (ONNX builder or TensorFlow)
# --------------------------------------------------------------------------------------------

MIXED_BLOCKS = ["Mixed_3b", "Mixed_3c", "MaxPool_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d",
                "Mixed_4e", "Mixed_4f", "MaxPool_5a_2x2", "Mixed_5b", "Mixed_5c"]


def mixed(ops, block, x):
    p = block + "/"
    b0 = ops.conv(p + "Branch_0/Conv2d_0a_1x1", x)
    b1 = ops.conv(p + "Branch_1/Conv2d_0b_3x3", ops.conv(p + "Branch_1/Conv2d_0a_1x1", x))
    second = "Conv2d_0a_3x3" if block == "Mixed_5b" else "Conv2d_0b_3x3"  # slim's scope quirk
    b2 = ops.conv(p + "Branch_2/" + second, ops.conv(p + "Branch_2/Conv2d_0a_1x1", x))
    b3 = ops.conv(p + "Branch_3/Conv2d_0b_1x1", ops.max_pool(x, 3, 1, p + "Branch_3/MaxPool_0a_3x3"))
    return ops.concat([b0, b1, b2, b3], block)


def inception_v1(ops, x):
    x = ops.conv("Conv2d_1a_7x7", x, stride=2)
    x = ops.max_pool(x, 3, 2, "MaxPool_2a_3x3")
    x = ops.conv("Conv2d_2b_1x1", x)
    x = ops.conv("Conv2d_2c_3x3", x)
    x = ops.max_pool(x, 3, 2, "MaxPool_3a_3x3")
    for block in MIXED_BLOCKS:
        if block == "MaxPool_4a_3x3":
            x = ops.max_pool(x, 3, 2, block)
        elif block == "MaxPool_5a_2x2":
            x = ops.max_pool(x, 2, 2, block)
        else:
            x = mixed(ops, block, x)
    return ops.head(x)                         # AvgPool_0a_7x7 VALID, Conv2d_0c_1x1, squeeze, softmax


class OnnxOps:
    """Builds ONNX nodes (NCHW) and tracks spatial sizes to compute TF SAME pads statically."""

    def __init__(self, weights):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper = helper, numpy_helper
        self.weights = weights
        self.nodes, self.inits, self.hw = [], [], {}

    def _init(self, name, arr):
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def conv(self, scope, x, stride=1):
        w, b = folded_conv(self.weights, scope)
        kh, kw = w.shape[:2]
        h, wd = self.hw[x]
        t, bo, oh = same_pads(h, kh, stride)
        l, r, ow = same_pads(wd, kw, stride)
        wn = self._init(scope + "/weights_folded", w.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        bn = self._init(scope + "/bias_folded", b)
        c = scope + "/conv"
        self.nodes.append(self.helper.make_node(
            "Conv", [x, wn, bn], [c], name=c, kernel_shape=[kh, kw], strides=[stride, stride],
            pads=[t, l, bo, r], dilations=[1, 1], group=1))
        y = scope + "/Relu"
        self.nodes.append(self.helper.make_node("Relu", [c], [y], name=y))
        self.hw[c] = self.hw[y] = (oh, ow)
        return y

    def max_pool(self, x, k, s, name):
        h, wd = self.hw[x]
        t, bo, oh = same_pads(h, k, s)
        l, r, ow = same_pads(wd, k, s)
        y = name
        self.nodes.append(self.helper.make_node(
            "MaxPool", [x], [y], name=y, kernel_shape=[k, k], strides=[s, s], pads=[t, l, bo, r]))
        self.hw[y] = (oh, ow)
        return y

    def concat(self, xs, name):
        y = name
        self.nodes.append(self.helper.make_node("Concat", xs, [y], name=y, axis=1))
        self.hw[y] = self.hw[xs[0]]
        return y

    def head(self, x):
        if self.hw[x] != (7, 7):
            raise ValueError(f"AvgPool_0a_7x7 (VALID) needs a 7x7 Mixed_5c, got {self.hw[x]}")
        h = self.helper
        self.nodes.append(h.make_node("AveragePool", [x], ["AvgPool_0a_7x7"], name="AvgPool_0a_7x7",
                                      kernel_shape=[7, 7], strides=[1, 1], pads=[0, 0, 0, 0]))
        w = self.weights["InceptionV1/Logits/Conv2d_0c_1x1/weights"]
        b = self.weights["InceptionV1/Logits/Conv2d_0c_1x1/biases"]
        wn = self._init("Logits/Conv2d_0c_1x1/weights", w.transpose(3, 2, 0, 1))
        bn = self._init("Logits/Conv2d_0c_1x1/biases", b)
        self.nodes.append(h.make_node("Conv", ["AvgPool_0a_7x7", wn, bn], ["Conv2d_0c_1x1"],
                                      name="Conv2d_0c_1x1", kernel_shape=[1, 1]))
        self.nodes.append(h.make_node("Flatten", ["Conv2d_0c_1x1"], ["Logits"], name="SpatialSqueeze",
                                      axis=1))
        self.nodes.append(h.make_node("Softmax", ["Logits"], ["Predictions"], name="Predictions", axis=1))
        return w.shape[3]


def build_onnx(weights, path):
    import onnx
    from onnx import TensorProto, helper
    ops = OnnxOps(weights)
    ops.hw["input"] = (IMAGE_SIZE, IMAGE_SIZE)
    classes = inception_v1(ops, "input")
    graph = helper.make_graph(
        ops.nodes, "InceptionV1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info("Logits", TensorProto.FLOAT, ["N", classes]),
         helper.make_tensor_value_info("Predictions", TensorProto.FLOAT, ["N", classes])],
        ops.inits)
    model = helper.make_model(graph, producer_name="inception-swift benchmarks/run_peers.py",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # opset 17's IR version; accepted by every ORT >= 1.13
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return len(ops.nodes), len(ops.inits)


def ort_session(model_path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_path, sess_options=so, providers=["CPUExecutionProvider"])


class TFOps:
    """Same network with tf.nn ops, NHWC, folded batch norm, TF's own SAME padding."""

    def __init__(self, weights, tf):
        self.tf, self.weights, self.params = tf, weights, {}
        for name in weights:
            if name.endswith("/weights") and "/Logits/" not in name:
                scope = name[len("InceptionV1/"):-len("/weights")]
                w, b = folded_conv(weights, scope)
                self.params[scope] = (tf.constant(w), tf.constant(b))
        self.params["Logits"] = (tf.constant(weights["InceptionV1/Logits/Conv2d_0c_1x1/weights"]),
                                 tf.constant(weights["InceptionV1/Logits/Conv2d_0c_1x1/biases"]))

    def conv(self, scope, x, stride=1):
        w, b = self.params[scope]
        return self.tf.nn.relu(self.tf.nn.conv2d(x, w, stride, "SAME") + b)

    def max_pool(self, x, k, s, name):
        return self.tf.nn.max_pool2d(x, k, s, "SAME")

    def concat(self, xs, name):
        return self.tf.concat(xs, axis=3)

    def head(self, x):
        tf = self.tf
        x = tf.nn.avg_pool2d(x, 7, 1, "VALID")
        w, b = self.params["Logits"]
        logits = tf.squeeze(tf.nn.conv2d(x, w, 1, "VALID") + b, [1, 2])
        return logits, tf.nn.softmax(logits)


# --------------------------------------------------------------------------------------------
# Workers (each engine measured in its own process: comparable peak RSS)
# --------------------------------------------------------------------------------------------

def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB -> MiB


def time_loop(fn, warmup, iterations):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def ort_worker(args):
    import onnxruntime as ort
    rss_import = peak_rss_mb()
    sess = ort_session(args.ort_worker, args.threads)
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch_size, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    feed, fetch = {"input": x}, ["Logits", "Predictions"]
    times = time_loop(lambda: sess.run(fetch, feed), args.warmup, args.iterations)
    print(json.dumps({"engine": "onnxruntime", "version": ort.__version__, "batch_size": args.batch_size,
                      "threads": args.threads, "times_ms": times,
                      "ms_per_batch_median": statistics.median(times),
                      "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss_import}))


def import_tf(threads):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def tf_worker(args):
    tf = import_tf(args.threads)
    rss_import = peak_rss_mb()
    ops = TFOps(read_safetensors(args.tf_worker), tf)
    if args.verify_input:
        x = np.load(args.verify_input)
    else:
        x = np.random.default_rng(0).uniform(-1, 1, (args.batch_size, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
    fn = tf.function(lambda t: inception_v1(ops, t),
                     input_signature=[tf.TensorSpec(x.shape, tf.float32)])
    xt = tf.constant(x)
    if args.verify_input:
        logits = fn(xt)[0].numpy()
        print(json.dumps({"logits": logits.tolist()}))
        return
    times = time_loop(lambda: [t.numpy() for t in fn(xt)], args.warmup, args.iterations)
    print(json.dumps({"engine": "tensorflow", "version": tf.__version__, "batch_size": args.batch_size,
                      "threads": args.threads, "times_ms": times,
                      "ms_per_batch_median": statistics.median(times),
                      "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": rss_import}))


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON object in output:\n" + text)


def run_json(cmd):
    # Through `sh -c 'cmd; exit $?'` so the measured process is forked from a small shell, not from
    # this (large) Python process: Linux carries the parent's RSS high-water mark into a child's
    # ru_maxrss across fork + execve, which would make every engine report at least our size.
    p = subprocess.run(["/bin/sh", "-c", shlex.join(cmd) + "; exit $?"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {shlex.join(cmd)}\n{p.stderr[-4000:]}")
    return last_json(p.stdout)


def loadavg():
    with open("/proc/loadavg") as f:
        return tuple(float(v) for v in f.read().split()[:3])


def cpu_busy_seconds():
    """Machine-wide busy CPU time (all cores) from /proc/stat, in seconds."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def wait_for_quiet(threshold, max_wait):
    start = time.time()
    la = loadavg()
    while la[0] > threshold and time.time() - start < max_wait:
        print(f"  load average {la[0]:.2f} > {threshold}: waiting ({time.time() - start:.0f}s of {max_wait:.0f}s)",
              flush=True)
        time.sleep(20)
        la = loadavg()
    return la, time.time() - start


def foreign_cores(fn):
    """Runs fn(); returns (its result, CPU used meanwhile by processes other than this script and its
    children, in cores: machine-wide busy time from /proc/stat minus our own, over the wall time)."""
    b0, o0, t0 = cpu_busy_seconds(), own_cpu_seconds(), time.time()
    r = fn()
    return r, max(0.0, (cpu_busy_seconds() - b0) - (own_cpu_seconds() - o0)) / max(time.time() - t0, 1e-3)


def wait_for_quiet_window(threshold, budget, sample=2.0):
    """Before a round: wait until others used < threshold cores over a `sample`-second window,
    for at most `budget` seconds. Returns (last sample, seconds waited)."""
    start = time.time()
    while True:
        _, f = foreign_cores(lambda: time.sleep(sample))
        if f < threshold or time.time() - start >= budget:
            return f, time.time() - start
        time.sleep(3)


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, shell=True).stdout.strip()
    except OSError:
        return ""


def machine_info():
    lscpu = {}
    for line in sh("lscpu").splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            lscpu[k.strip()] = v.strip()
    flags = set(lscpu.get("Flags", "").split())
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile"]
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "cpu": lscpu.get("Model name", platform.processor()) + (
            f" (family {lscpu['CPU family']}, model {lscpu['Model']})" if "CPU family" in lscpu and "Model" in lscpu else ""),
        "cpus": lscpu.get("CPU(s)", str(os.cpu_count())),
        "threads_per_core": lscpu.get("Thread(s) per core", "?"),
        "cores_per_socket": lscpu.get("Core(s) per socket", "?"),
        "flags": " ".join(f for f in wanted if f in flags) or "(none of " + ", ".join(wanted) + ")",
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
    }


def software_info(binary, with_tf):
    import onnx
    import onnxruntime as ort
    info = {
        "onnxruntime": ort.__version__, "onnx": onnx.__version__, "numpy": np.__version__,
        "python": platform.python_version(),
        "swift": sh("swift --version 2>&1 | head -1") or "(swift not on PATH)",
        "commit": sh(f"git -C {shlex.quote(REPO)} rev-parse --short HEAD") or "?",
        "dirty": bool(sh(f"git -C {shlex.quote(REPO)} status --porcelain --untracked-files=no -- Sources Package.swift")),
        "binary_mtime": datetime.datetime.fromtimestamp(os.path.getmtime(binary)).strftime("%Y-%m-%d %H:%M:%S"),
    }
    if with_tf:
        info["tensorflow"] = sh(f"{shlex.quote(sys.executable)} -c 'import importlib.metadata as m; "
                                f"print(m.version(\"tensorflow-cpu\"))' 2>/dev/null") or "?"
    return info


def fmt(v, d=2):
    return f"{v:.{d}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per batch size (default 5)")
    ap.add_argument("--iterations", type=int, default=30, help="timed passes per engine per round (default 30)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed passes first, every engine (default 5)")
    ap.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    ap.add_argument("--threads", type=int, default=2, help="threads for every engine (default 2)")
    ap.add_argument("--weights", default=os.path.join(REPO, ".fixtures-full/v2/model.ckpt-1000"),
                    help="TF-slim checkpoint (V1/V2 prefix) or .safetensors")
    ap.add_argument("--reference", default=os.path.join(REPO, ".fixtures-full/224"),
                    help="folder with input.npy (NHWC) and TF's Logits.npy for the same weights")
    ap.add_argument("--binary", default=os.path.join(REPO, ".build/release/inception"))
    ap.add_argument("--output", default=os.path.join(REPO, "BENCHMARKS.md"), help="markdown report ('' for none)")
    ap.add_argument("--raw-json", default="", help="also write every measurement here")
    ap.add_argument("--save-onnx", default="", help="keep the generated ONNX model at this path")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max abs logit diff vs TF (default 1e-4)")
    ap.add_argument("--no-tf", action="store_true", help="skip TensorFlow (otherwise it is a third engine)")
    ap.add_argument("--load-threshold", type=float, default=1.2, help="wait while the 1-min load is above this")
    ap.add_argument("--max-wait", type=float, default=600,
                    help="longest total wait for a quiet machine (before the run and between rounds), seconds")
    ap.add_argument("--quiet-cores", type=float, default=0.15,
                    help="before each round, wait while other processes use more than this many cores")
    # worker modes
    ap.add_argument("--ort-worker", metavar="MODEL.onnx", help=argparse.SUPPRESS)
    ap.add_argument("--tf-worker", metavar="WEIGHTS.safetensors", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--verify-input", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.ort_worker:
        return ort_worker(args)
    if args.tf_worker:
        return tf_worker(args)

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"no binary at {binary}: build it with `swift build -c release --product inception`")
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    with_tf = not args.no_tf
    tmp = tempfile.TemporaryDirectory(prefix="run_peers_")
    # Benchmark a private copy: other builds in this tree may relink .build/release/inception mid-run.
    binary_src, binary = binary, os.path.join(tmp.name, "inception")
    shutil.copy2(binary_src, binary)
    with open(binary, "rb") as f:
        binary_sha = hashlib.sha256(f.read()).hexdigest()[:16]
    print(f"binary: {binary_src} (sha256 {binary_sha}..., built "
          f"{datetime.datetime.fromtimestamp(os.path.getmtime(binary)):%Y-%m-%d %H:%M:%S}) copied to {binary}")
    me = os.path.abspath(__file__)
    py = sys.executable

    sw = software_info(binary, with_tf)  # now: the commit the copied binary most likely came from
    sw["binary_sha"], sw["binary_src"] = binary_sha, os.path.relpath(binary_src, REPO)

    # 1-2. Weights and the ONNX model.
    weights, st_path = load_weights(args.weights, binary, tmp.name)
    onnx_path = args.save_onnx or os.path.join(tmp.name, "inception_v1.onnx")
    n_nodes, n_inits = build_onnx(weights, onnx_path)
    print(f"ONNX model: {n_nodes} nodes, {n_inits} initializers, opset {OPSET}, NCHW input -> {onnx_path}")

    # 3. Correctness against TF's reference logits (same weights, same input).
    x_nhwc = np.load(os.path.join(args.reference, "input.npy")).astype(np.float32)
    ref = np.load(os.path.join(args.reference, "Logits.npy")).astype(np.float32)
    sess = ort_session(onnx_path, args.threads)
    ort_logits = sess.run(["Logits"], {"input": np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))})[0]
    del sess
    check = {"onnxruntime": float(np.abs(ort_logits - ref).max())}
    outdir = os.path.join(tmp.name, "ours_out")
    p = subprocess.run([binary, "run", "--weights", st_path, "--input", os.path.join(args.reference, "input.npy"),
                        "--output-dir", outdir, "--endpoints", "Logits"], capture_output=True, text=True)
    check["ours"] = float(np.abs(np.load(os.path.join(outdir, "Logits.npy")) - ref).max()) if p.returncode == 0 else None
    if with_tf:
        out = run_json([py, me, "--tf-worker", st_path, "--threads", str(args.threads),
                        "--verify-input", os.path.join(args.reference, "input.npy")])
        check["tensorflow"] = float(np.abs(np.array(out["logits"], dtype=np.float32) - ref).max())
    ref_scale = float(np.abs(ref).max())
    for k, v in check.items():
        print(f"max |logits - TF reference| {k:12s}: {'FAILED TO RUN' if v is None else f'{v:.3g}'}"
              f"  (max |reference logit| {ref_scale:.3g})")
    if check["onnxruntime"] > args.tolerance:
        sys.exit(f"ONNX model does not match TF's logits ({check['onnxruntime']:.3g} > {args.tolerance}): "
                 "refusing to benchmark")
    if check["ours"] is None or check["ours"] > args.tolerance:
        print(f"WARNING: our binary's logits do not match ({check['ours']}); stderr:\n{p.stderr[-2000:]}")
    if with_tf and check["tensorflow"] > args.tolerance:
        print("WARNING: TF engine's logits do not match: dropping it from the benchmark")
        with_tf = False

    # 4. Benchmark: alternate engines within each round.
    la_before, waited = wait_for_quiet(args.load_threshold, args.max_wait)
    print(f"load average before the run: {la_before[0]:.2f} {la_before[1]:.2f} {la_before[2]:.2f}"
          f" (waited {waited:.0f}s)")
    common = ["--batch-size", None, "--iterations", str(args.iterations), "--warmup", str(args.warmup),
              "--threads", str(args.threads)]

    def cmd_for(engine, b):
        c = list(common)
        c[1] = str(b)
        if engine == "onnxruntime":
            return [py, me, "--ort-worker", onnx_path] + c
        if engine == "tensorflow":
            return [py, me, "--tf-worker", st_path] + c
        return [binary, "bench", "--weights", st_path] + c + ["--json"]

    engines = ["onnxruntime", "ours"] + (["tensorflow"] if with_tf else [])
    results = {(e, b): [] for e in engines for b in batches}
    loads, errors, round_waits = [], [], []
    t_start, busy0, own0 = time.time(), cpu_busy_seconds(), own_cpu_seconds()
    for b in batches:
        for r in range(args.rounds):
            f, w = wait_for_quiet_window(args.quiet_cores, max(0.0, args.max_wait - waited - sum(round_waits)))
            round_waits.append(w)
            if w >= 1:
                print(f"  waited {w:.0f}s for a quiet window (others at {f:.2f} cores)", flush=True)
            loads.append(loadavg()[0])
            for e in engines:
                try:
                    out, fc = foreign_cores(lambda: run_json(cmd_for(e, b)))
                except Exception as ex:  # keep going: report it
                    errors.append(f"{e} batch {b} round {r + 1}: {ex}")
                    print("ERROR", errors[-1])
                    continue
                out["foreign_cores"] = fc
                results[(e, b)].append(out)
                print(f"batch {b} round {r + 1}/{args.rounds} {e:12s} {out['ms_per_batch_median']:8.2f} ms/batch "
                      f"peak RSS {out['peak_rss_mb']:7.1f} MB  (load {loads[-1]:.2f}, others {fc:.2f} cores)",
                      flush=True)
    wall = time.time() - t_start
    foreign = max(0.0, (cpu_busy_seconds() - busy0) - (own_cpu_seconds() - own0))
    ncpu = os.cpu_count() or 1
    la_after = loadavg()

    # 5. Summarise: median over rounds of each round's median (the same statistic for every engine;
    #    `inception bench` reports per-run medians only), peak RSS = max over rounds.
    summary = {}
    for (e, b), outs in results.items():
        if not outs:
            continue
        meds = [o["ms_per_batch_median"] for o in outs]
        ms_batch = statistics.median(meds)
        s = {"ms_per_batch": ms_batch, "ms_per_image": ms_batch / b, "ips": 1000.0 * b / ms_batch,
             "rss": max(o["peak_rss_mb"] for o in outs), "round_medians": meds,
             "round_foreign": [o["foreign_cores"] for o in outs]}
        if "times_ms" in outs[0]:
            s["pooled_median"] = statistics.median([t for o in outs for t in o["times_ms"]])
            s["rss_after_import"] = max(o["rss_after_import_mb"] for o in outs)
        if e == "ours":
            s["gemm_kernel"] = outs[0].get("gemm_kernel", "?")
        summary[(e, b)] = s

    rows = []
    for b in batches:
        base = summary.get(("onnxruntime", b))
        for e in engines:
            s = summary.get((e, b))
            if not s:
                continue
            ratio_ms = s["ms_per_image"] / base["ms_per_image"] if base else float("nan")
            ratio_ips = s["ips"] / base["ips"] if base else float("nan")
            rows.append((e, b, s, ratio_ms, ratio_ips))

    hdr = ["engine", "batch", "ms/image (median)", "images/s", "ms/batch (median)", "peak RSS MB",
           "ms/image vs ORT", "images/s vs ORT"]
    table = [hdr] + [[e, str(b), fmt(s["ms_per_image"]), fmt(s["ips"], 1), fmt(s["ms_per_batch"]),
                      fmt(s["rss"], 1), fmt(rm, 3) + "x", fmt(ri, 3) + "x"] for e, b, s, rm, ri in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(hdr))]
    print()
    for i, r in enumerate(table):
        print("  ".join(c.rjust(widths[j]) if j > 0 else c.ljust(widths[j]) for j, c in enumerate(r)))
        if i == 0:
            print("  ".join("-" * w for w in widths))

    targets = []
    if ("ours", 1) in summary and ("onnxruntime", 1) in summary:
        v = summary[("ours", 1)]["ms_per_image"] / summary[("onnxruntime", 1)]["ms_per_image"]
        targets.append(("batch 1: ours ms/image <= 0.8x ORT", f"{v:.3f}x", v <= TARGET_B1_MS_RATIO))
    if ("ours", 8) in summary and ("onnxruntime", 8) in summary:
        v = summary[("ours", 8)]["ips"] / summary[("onnxruntime", 8)]["ips"]
        targets.append(("batch 8: ours images/s >= 1.25x ORT", f"{v:.3f}x", v >= TARGET_B8_IPS_RATIO))
        v = summary[("ours", 8)]["rss"]
        targets.append(("batch 8: our peak RSS <= 150 MB", f"{v:.1f} MB", v <= TARGET_B8_RSS_MB))
    print()
    for name, val, ok in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {val}")
    print(f"\nload average (1 min) at round starts: {min(loads):.2f}..{max(loads):.2f}; before {la_before[0]:.2f}, "
          f"after {la_after[0]:.2f}; CPU used by other processes during the run: {foreign:.1f} s of "
          f"{wall * ncpu:.0f} core-s ({100 * foreign / (wall * ncpu):.1f}%)")
    for e in errors:
        print("ERROR:", e)

    if args.raw_json:
        with open(args.raw_json, "w") as f:
            json.dump({"check": check, "results": {f"{e}/{b}": v for (e, b), v in results.items()}}, f)

    if args.output:
        machine = machine_info()
        cmdline = "python3 " + shlex.join([os.path.relpath(me, REPO)] + sys.argv[1:])
        write_report(args.output, table, rows, summary, targets, check, ref_scale, machine, sw, engines, batches,
                     args, cmdline, [" ".join(c if c.startswith("$TMP/") else shlex.quote(c) for c in _rel(cmd_for(e, batches[-1])))
                      for e in engines],
                     {"before": la_before, "after": la_after, "rounds": loads, "waited": waited, "round_waits": round_waits,
                      "foreign": foreign, "core_seconds": wall * ncpu, "wall": wall}, errors, n_nodes)
        print(f"wrote {args.output}")


def _rel(cmd):
    out = []
    for c in cmd:
        if c == sys.executable:
            out.append("python3")
        elif os.path.isabs(c) and c.startswith(REPO + os.sep):
            out.append(os.path.relpath(c, REPO))
        elif os.path.isabs(c) and c.startswith(tempfile.gettempdir()):
            out.append("$TMP/" + os.path.basename(c))
        else:
            out.append(c)
    return out


def conditions_lines(m, load, args):
    """The report's "Machine and conditions" section (also used by run_training_peers.py)."""
    share = load["foreign"] / max(load["core_seconds"], 1e-9)
    return [
        "## Machine and conditions\n",
        f"- CPU: {m['cpu']}; {m['cpus']} CPUs ({m['cores_per_socket']} cores per socket, "
        f"{m['threads_per_core']} thread(s) per core); {m['memory_gib']} GiB; Linux {m['kernel']}",
        f"- CPU flags of interest present: {m['flags']}",
        f"- Load average (1 min): {load['before'][0]:.2f} before the run (after waiting {load['waited']:.0f} s "
        f"for it to drop below {args.load_threshold}), {min(load['rounds']):.2f}..{max(load['rounds']):.2f} "
        f"at the start of each round, {load['after'][0]:.2f} after. The benchmark itself keeps "
        f"~{args.threads} threads busy, so a load near {args.threads} during the run is expected.",
        f"- Before each round the script waited for a 2 s window in which other processes used less than "
        f"{args.quiet_cores} cores (total {sum(load['round_waits']):.0f} s of waiting between rounds; the "
        f"whole wait budget was {args.max_wait:.0f} s).",
        f"- CPU time used by *other* processes during the run: {load['foreign']:.1f} s of "
        f"{load['core_seconds']:.0f} core-seconds ({100 * share:.1f}%) "
        f"(machine-wide busy time from /proc/stat minus this script's and its children's).",
    ]


def write_report(path, table, rows, summary, targets, check, ref_scale, m, sw, engines, batches, args,
                 cmdline, engine_cmds, load, errors, n_nodes):
    def md_table(t):
        lines = ["| " + " | ".join(t[0]) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(t[0]))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in t[1:]]
        return "\n".join(lines)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = []
    L.append("# Benchmarks: `inception` vs ONNX Runtime (CPU, same machine, same weights)\n")
    L.append(f"Measured {now} by `benchmarks/run_peers.py` in one run, engines alternating round by round "
             f"({args.rounds} rounds x {args.iterations} timed passes after {args.warmup} warm-up passes, "
             f"per engine and batch size), **{args.threads} threads** for every engine. "
             "Lower ms/image is better; a ratio below 1x in *ms/image vs ORT* and above 1x in "
             "*images/s vs ORT* means we are faster.\n")
    L.append("Training steps (`inception bench --train`) beside TF-slim and PyTorch: "
             "[benchmarks/TRAINING.md](benchmarks/TRAINING.md), written by `benchmarks/run_training_peers.py`.\n")
    share = load["foreign"] / max(load["core_seconds"], 1e-9)
    if share > NOISY_SHARE:
        L.append(f"> **Noisy run.** Other processes used {100 * share:.0f}% of the machine's CPU time during this run "
                 f"(1-minute load {min(load['rounds']):.2f}..{max(load['rounds']):.2f} at the round starts, after "
                 f"waiting {load['waited'] + sum(load['round_waits']):.0f} s for a quiet machine), so every engine "
                 "got fewer cores than it asked for. The ratios are indicative only; rerun on a quiet machine "
                 "before judging the targets.\n")
    L.append(md_table(table) + "\n")
    if targets:
        L.append("## Targets (from the issue)\n")
        L.append("| target | measured | |\n|---|---:|---|")
        for name, val, ok in targets:
            L.append(f"| {name} | {val} | {'met' if ok else '**not met**'} |")
        L.append("")
    L.extend(conditions_lines(m, load, args))
    L.append("")
    L.append("## Software\n")
    L.append(f"- ours: `inception`, tree at commit {sw['commit']}{' (+ uncommitted changes in Sources/)' if sw['dirty'] else ''} "
             "when the run started, "
             f"binary `{sw['binary_src']}` built {sw['binary_mtime']} (sha256 {sw['binary_sha']}…, copied aside "
             f"for the run), `swift build -c release --product inception`, {sw['swift']}; "
             + (f"GEMM kernel `{summary[('ours', batches[0])]['gemm_kernel']}`" if ('ours', batches[0]) in summary else ""))
    L.append(f"- ONNX Runtime {sw['onnxruntime']} (PyPI `onnxruntime`, CPUExecutionProvider), onnx {sw['onnx']}, "
             f"numpy {sw['numpy']}, Python {sw['python']}")
    if "tensorflow" in engines:
        L.append(f"- TensorFlow {sw.get('tensorflow', '?')} (PyPI `tensorflow-cpu`, oneDNN as shipped)")
    L.append("")
    L.append("## Correctness (same weights, same input)\n")
    L.append(f"Max |logits − TF-slim reference logits| on `.fixtures-full/224/input.npy` (batch 2; "
             f"largest reference logit {ref_scale:.3g}), tolerance {args.tolerance:g} (the script refuses to "
             "benchmark if ONNX Runtime misses it):\n")
    for k, v in check.items():
        L.append(f"- {k}: {'failed to run' if v is None else f'{v:.3g}'}")
    L.append("")
    L.append("## Method\n")
    L.append("- Weights: the TF V2 checkpoint `.fixtures-full/v2/model.ckpt-1000` (deterministic weights written by "
             "TensorFlow via `scripts/make_parity_fixtures.py`), converted once with `inception convert` to a "
             "temporary .safetensors that every engine loads.")
    L.append(f"- ONNX model ({n_nodes} nodes, opset {OPSET}): built by the script with `onnx.helper` and checked "
             "with `onnx.checker`. Batch norm folded into the conv weights and biases (scale = 1/sqrt(var + 0.001), "
             "w·scale, beta − mean·scale), TF SAME padding as explicit asymmetric pads (before = total//2), "
             "MaxPool with the same pads, the 3x3 stride-1 max pool in Branch_3, AveragePool 7x7 VALID, logits as a "
             "1x1 Conv with bias, Flatten, Softmax. **Input NCHW** (ORT's native layout): no Transpose in the graph.")
    L.append("- Layouts: each engine gets its natural layout; no transposes inside the timed region. ORT: random "
             "NCHW input; ours: random NHWC input generated by `inception bench`; TF: NHWC.")
    L.append(f"- ONNX Runtime: `SessionOptions` graph_optimization_level ORT_ENABLE_ALL, intra_op_num_threads "
             f"{args.threads}, inter_op_num_threads 1, ORT_SEQUENTIAL; timed in-process with `time.perf_counter` "
             "around each `session.run` (fetching Logits and Predictions), in its own worker process "
             "(`run_peers.py --ort-worker`).")
    L.append(f"- ours: `inception bench --weights … --batch-size B --iterations K --warmup W --threads {args.threads} "
             "--json` as a subprocess (its own per-pass timer).")
    if "tensorflow" in engines:
        L.append("- TensorFlow: the same network written with `tf.nn` ops (NHWC, TF's own SAME padding, the same "
                 "folded batch norm) in a `tf.function` with a fixed input signature, intra-op threads "
                 f"{args.threads}, inter-op 1, in its own worker process (`run_peers.py --tf-worker`).")
    L.append("- Statistic: for each engine and round the median of its K passes; the table shows the median of "
             "those round medians (the same statistic for every engine, since `inception bench` reports per-run "
             "medians). images/s = 1000·batch / (ms/batch). Peak RSS: `ru_maxrss` of the engine's own process, "
             "max over rounds; for the Python workers it includes the interpreter, numpy and the runtime library "
             "(see *RSS after import* below).")
    L.append("")
    L.append("## Per-round medians (ms/batch)\n")
    L.append("In brackets: CPU used by other processes while that engine ran, in % of one core "
             f"(the machine has {m['cpus']} CPUs; every engine uses {args.threads} threads). "
             "Rounds with a large share are the noisy ones.\n")
    det = [["engine", "batch"] + [f"round {i + 1}" for i in range(args.rounds)] + ["pooled median", "RSS after import MB"]]
    for e, b, s, _, _ in rows:
        meds = [f"{v:.2f} ({100 * fc:.0f}%)" for v, fc in zip(s["round_medians"], s["round_foreign"])]
        meds += ["–"] * (args.rounds - len(meds))
        det.append([e, str(b)] + meds + [fmt(s["pooled_median"]) if "pooled_median" in s else "–",
                                          fmt(s["rss_after_import"], 1) if "rss_after_import" in s else "–"])
    L.append(md_table(det) + "\n")
    if errors:
        L.append("## Errors during the run\n")
        L += [f"- {e}" for e in errors]
        L.append("")
    L.append("## Exact commands\n")
    L.append("```sh\nswift build -c release --product inception\npip install -r benchmarks/requirements.txt\n"
             + cmdline + "\n```\n")
    L.append("What the script runs per round (shown for the last batch size; `$TMP` is its temporary folder, "
             "`$TMP/inception` a copy of `.build/release/inception` taken at the start):\n")
    L.append("```sh\n" + "\n".join(engine_cmds) + "\n```\n")
    with open(path, "w") as f:
        f.write("\n".join(L))


if __name__ == "__main__":
    main()
