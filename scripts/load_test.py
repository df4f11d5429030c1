#!/usr/bin/env python3
"""Load test for `inception serve` (loopback only, bounded in requests and time).

Starts `inception serve` on 127.0.0.1 (a free port) and sends sample JPEGs from Samples/ from N
concurrent clients (one keep-alive connection each), in rounds of a fixed number of requests;
reports throughput, p50/p90/p99 latency, errors (must be 0) and the server's memory (VmRSS sampled
during the rounds, peak VmHWM from /proc/PID/status; it must not grow). `inception bench
--batch-size B --json` runs with the same weights before the first round and after each one (the
machine may be shared: the best round is compared with the best bench run, and each round with
the bench runs on either side of it) against the target (>= 80%). Results go to benchmarks/SERVER.md (and,
with --json-out, to a JSON file). Exit code 0 when the target is met.

Usage:
    swift build -c release --product inception
    python3 scripts/load_test.py [--binary .build/release/inception] [--weights W] \
        [--clients 16] [--requests 400] [--rounds 3] [--max-batch 8] [--max-delay-ms 5] [--time-limit 600]

Weights, if --weights is not given: $INCEPTION_WEIGHTS, else the TF V2 checkpoint of the
parity fixtures (.fixtures-full/v2/model.ckpt-1000, made by scripts/make_parity_fixtures.py),
else the released checkpoint in the cache. Speed does not depend on the values.
"""

import argparse
import datetime
import glob
import http.client
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def find_weights(explicit):
    if explicit:
        return explicit
    if os.environ.get("INCEPTION_WEIGHTS"):
        return os.environ["INCEPTION_WEIGHTS"]
    v2 = os.path.join(ROOT, ".fixtures-full", "v2", "model.ckpt-1000")
    if os.path.exists(v2 + ".index"):
        return v2
    home = os.environ.get("INCEPTION_HOME") or os.path.expanduser("~/.cache/inception")
    cached = glob.glob(os.path.join(home, "**", "inception_v1.ckpt"), recursive=True)
    if cached:
        return cached[0]
    sys.exit("no weights: pass --weights (a TF checkpoint or .safetensors), set INCEPTION_WEIGHTS, "
             "or make the parity fixtures with scripts/make_parity_fixtures.py")


def proc_status(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB -> MB
    except OSError:
        pass
    return None


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def own_cpu_seconds():
    """CPU time of this script (all its threads: the load clients)."""
    t = os.times()
    return t.user + t.system


def children_cpu_seconds():
    """CPU time of this script's finished child processes (the bench runs)."""
    t = os.times()
    return t.children_user + t.children_system


def machine_busy_seconds():
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    values = [int(x) for x in parts]
    idle = values[3] + values[4]
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def run_bench(binary, weights, batch, iterations, threads):
    cmd = [binary, "bench", "--weights", weights, "--batch-size", str(batch), "--iterations", str(iterations),
           "--warmup", "3", "--json"]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900).stdout
    return json.loads(out.strip().splitlines()[-1])


class Server:
    def __init__(self, binary, weights, args):
        cmd = [binary, "serve", "--weights", weights, "--host", "127.0.0.1", "--port", "0",
               "--max-batch", str(args.max_batch), "--max-delay-ms", str(args.max_delay_ms),
               "--max-queue", str(args.max_queue)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        self.command = cmd
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.process.kill()
            sys.exit("the server did not start:\n" + self.process.stderr.read())
        # Keep draining the pipes so the server never blocks on them.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        self.stderr = []
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()

    def get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        conn.close()
        return r.status, body

    def stop(self, timeout=60):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return None


def load(port, images, clients, total, time_limit):
    lock = threading.Lock()
    state = {"next": 0}
    latencies, errors, statuses, batch_sizes = [], [], {}, []
    deadline = time.time() + time_limit

    def client(cid):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.time() < deadline:
            with lock:
                i = state["next"]
                if i >= total:
                    break
                state["next"] += 1
            name, body = images[i % len(images)]
            start = time.perf_counter()
            try:
                conn.request("POST", "/v1/classify?top=5", body=body, headers={"Content-Type": "image/jpeg"})
                r = conn.getresponse()
                payload = r.read()
                elapsed = time.perf_counter() - start
                with lock:
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                    if r.status == 200:
                        latencies.append(elapsed)
                        batch_sizes.append(json.loads(payload).get("batch_size", 0))
                    else:
                        errors.append(f"{name}: HTTP {r.status} {payload[:200]!r}")
            except Exception as e:  # noqa: BLE001 - every failure counts as an error
                with lock:
                    errors.append(f"{name}: {type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"wall_s": wall, "latencies": latencies, "errors": errors, "statuses": statuses,
            "batch_sizes": batch_sizes, "sent": state["next"]}


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r" ([0-9.eE+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def wait_for_quiet(max_wait, threshold=0.3):
    """Waits (at most max_wait s) for a 2 s window in which the machine's busy time is below
    `threshold` cores; returns the seconds waited."""
    waited = 0.0
    while waited < max_wait:
        b0 = machine_busy_seconds()
        time.sleep(2)
        waited += 2
        if machine_busy_seconds() - b0 < threshold * 2:
            break
    return waited


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=None, help="the inception executable (default: the newest of .build*/release/inception)")
    p.add_argument("--weights", default=None)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=400, help="requests in each measured round")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds, each between two bench runs")
    p.add_argument("--warmup", type=int, default=32, help="requests before the first round")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-delay-ms", type=float, default=5)
    p.add_argument("--max-queue", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="model threads for server and bench (default: all cores)")
    p.add_argument("--bench-iterations", type=int, default=30)
    p.add_argument("--quiet-wait", type=float, default=60, help="seconds to wait at most, before each round, for a quiet machine")
    p.add_argument("--time-limit", type=float, default=600, help="seconds per round; the load stops then even if requests remain")
    p.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "SERVER.md"))
    p.add_argument("--json-out", default=None)
    args = p.parse_args()
    if not (1 <= args.clients <= 256 and 1 <= args.requests <= 100_000 and 1 <= args.rounds <= 20):
        sys.exit("--clients must be in 1..256, --requests in 1..100000 and --rounds in 1..20")

    binary = args.binary
    if binary is None:
        candidates = [c for c in glob.glob(os.path.join(ROOT, ".build*", "release", "inception")) if os.access(c, os.X_OK)]
        if not candidates:
            sys.exit("no inception binary: swift build -c release --product inception")
        binary = max(candidates, key=os.path.getmtime)
    weights = find_weights(args.weights)
    images = []
    for path in sorted(glob.glob(os.path.join(ROOT, "Samples", "*.jpg"))):
        with open(path, "rb") as f:
            images.append((os.path.basename(path), f.read()))
    if not images:
        sys.exit("no Samples/*.jpg")
    print(f"binary {binary}\nweights {weights}\nimages {[n for n, _ in images]}", flush=True)
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]

    def bench(label):
        wait_for_quiet(args.quiet_wait)
        busy0, children0 = machine_busy_seconds(), children_cpu_seconds()
        t0 = time.perf_counter()
        b = run_bench(binary, weights, args.max_batch, args.bench_iterations, args.threads)
        wall = time.perf_counter() - t0
        own = children_cpu_seconds() - children0
        b["other_cpu_fraction"] = max(0.0, machine_busy_seconds() - busy0 - own) / (wall * cores)
        print(f"bench {label}: batch {args.max_batch}: {b['images_per_second']:.2f} images/s "
              f"(other processes {100 * b['other_cpu_fraction']:.0f}% of the CPU)", flush=True)
        return b

    benches = [bench("0")]
    server = Server(binary, weights, args)
    pid = server.process.pid
    print(f"server pid {pid} on port {server.port}", flush=True)
    status, body = server.get("/healthz")
    assert status == 200, body
    rss_after_start = proc_status(pid, "VmRSS")
    warm = load(server.port, images, min(args.clients, args.warmup), args.warmup, args.time_limit)
    print(f"warm-up: {len(warm['latencies'])} ok, {len(warm['errors'])} errors", flush=True)

    samples = []  # VmRSS (MB) of the server every 0.25 s while a round runs
    rounds = []
    all_latencies, all_errors, all_statuses = [], [], {}
    for r in range(args.rounds):
        waited = wait_for_quiet(args.quiet_wait)
        _, before = server.get("/metrics")
        before = before.decode()
        sampling = threading.Event()

        def sample_rss(stop=sampling):
            while not stop.wait(0.25):
                rss = proc_status(pid, "VmRSS")
                if rss is not None:
                    samples.append(rss)

        first_sample = len(samples)
        sampler = threading.Thread(target=sample_rss, daemon=True)
        busy0, cpu0, self0 = machine_busy_seconds(), cpu_seconds(pid), own_cpu_seconds()
        sampler.start()
        run = load(server.port, images, args.clients, args.requests, args.time_limit)
        sampling.set()
        sampler.join()
        busy1, cpu1, self1 = machine_busy_seconds(), cpu_seconds(pid), own_cpu_seconds()
        _, after = server.get("/metrics")
        after = after.decode()

        def delta(name):
            return (metric(after, name) or 0) - (metric(before, name) or 0)

        wall = run["wall_s"]
        ok = len(run["latencies"])
        batches = delta("inception_batch_size_count")
        rnd = {
            "round": r + 1, "requests": args.requests, "completed": ok,
            "errors": len(run["errors"]) + (args.requests - run["sent"]), "wall_s": wall,
            "throughput_images_per_s": ok / wall if wall else 0.0,
            "p50_ms": percentile([x * 1000 for x in run["latencies"]], 50),
            "p99_ms": percentile([x * 1000 for x in run["latencies"]], 99),
            "mean_batch_size": delta("inception_batch_size_sum") / batches if batches else 0.0,
            "model_busy_fraction": delta("inception_inference_seconds_sum") / wall if wall else 0.0,
            "server_cpu_fraction": (cpu1 - cpu0) / (wall * cores) if cpu0 is not None and cpu1 is not None else None,
            "client_cpu_fraction": (self1 - self0) / (wall * cores),
            "other_cpu_fraction": max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - (self1 - self0)) / (wall * cores)
            if cpu0 is not None and cpu1 is not None else None,
            "quiet_wait_s": waited,
            "rss_max_mb": max(samples[first_sample:], default=None),
        }
        all_latencies += run["latencies"]
        all_errors += run["errors"]
        for k, v in run["statuses"].items():
            all_statuses[k] = all_statuses.get(k, 0) + v
        print(f"round {r + 1}: {rnd['throughput_images_per_s']:.2f} images/s, p50 {rnd['p50_ms']:.0f} ms, "
              f"p99 {rnd['p99_ms']:.0f} ms, {rnd['errors']} errors, mean batch {rnd['mean_batch_size']:.2f}, "
              f"RSS max {rnd['rss_max_mb']} MB", flush=True)
        rounds.append(rnd)
        benches.append(bench(str(r + 1)))

    peak_rss = proc_status(pid, "VmHWM")
    rss_end = proc_status(pid, "VmRSS")
    exit_code = server.stop()
    print(f"server stopped with exit code {exit_code}", flush=True)
    load_after = os.getloadavg()[0]

    for i, rnd in enumerate(rounds):
        reference = statistics.mean([benches[i]["images_per_second"], benches[i + 1]["images_per_second"]])
        rnd["bench_images_per_s"] = reference
        rnd["ratio_to_bench"] = rnd["throughput_images_per_s"] / reference if reference else 0.0
    # On a shared machine both measurements dip whenever other work runs; their best values are the
    # closest to a quiet machine, so the target compares best with best (per-round ratios are kept too).
    best_round = max(r["throughput_images_per_s"] for r in rounds)
    best_bench = max(b["images_per_second"] for b in benches)
    ratio = best_round / best_bench if best_bench else 0.0
    lat_ms = [x * 1000 for x in all_latencies]
    errors = sum(r["errors"] for r in rounds)
    total_wall = sum(r["wall_s"] for r in rounds)
    # Bounded: the RSS of the later rounds stays near that of the first ones (the allocator keeps
    # some freed memory, and a faster round has more requests in flight, hence the slack); a leak of
    # even a few KB per request would show over the rounds' thousands of requests.
    half = max(1, len(samples) // 2)
    rss_first_quarter = max(samples[:half], default=None)
    rss_last_quarter = max(samples[half:] or samples, default=None)
    memory_bounded = (rss_first_quarter is not None and rss_last_quarter is not None
                      and rss_last_quarter <= rss_first_quarter * 1.25 + 32)
    result = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "binary": os.path.relpath(binary, ROOT), "weights": os.path.relpath(weights, ROOT) if weights.startswith(ROOT) else weights,
        "clients": args.clients, "requests_per_round": args.requests, "rounds": rounds,
        "completed": len(all_latencies), "requests": args.requests * args.rounds, "errors": errors,
        "statuses": all_statuses, "wall_s": total_wall,
        "throughput_images_per_s": len(all_latencies) / total_wall if total_wall else 0.0,
        "latency_ms": {"p50": percentile(lat_ms, 50), "p90": percentile(lat_ms, 90), "p99": percentile(lat_ms, 99),
                       "max": max(lat_ms) if lat_ms else None, "mean": statistics.mean(lat_ms) if lat_ms else None},
        "max_batch": args.max_batch, "max_delay_ms": args.max_delay_ms, "max_queue": args.max_queue,
        "server_peak_rss_mb": peak_rss, "server_rss_after_start_mb": rss_after_start, "server_rss_end_mb": rss_end,
        "rss_max_first_quarter_mb": rss_first_quarter, "rss_max_last_quarter_mb": rss_last_quarter,
        "rss_samples": len(samples), "memory_bounded": memory_bounded, "server_exit_code": exit_code,
        "bench_images_per_s": [b["images_per_second"] for b in benches],
        "bench_other_cpu_fraction": [b["other_cpu_fraction"] for b in benches],
        "best_round_images_per_s": best_round, "best_bench_images_per_s": best_bench,
        "median_round_ratio": statistics.median(r["ratio_to_bench"] for r in rounds),
        "ratio_to_bench": ratio, "target_met": errors == 0 and ratio >= 0.8 and memory_bounded,
        "load_avg_before": load_before, "load_avg_after": load_after,
        "warmup": args.warmup, "cpu": cpu_model(), "cores": cores, "first_errors": all_errors[:5],
    }
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=2)
    write_markdown(args.output, result, server.command)
    print(f"wrote {args.output}")
    return 0 if result["target_met"] and exit_code == 0 else 1


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_markdown(path, r, command):
    lat = r["latency_ms"]
    verdict = "**met**" if r["target_met"] else "**not met**"

    def pct(x):
        return f"{100 * x:.0f}%" if x is not None else "?"

    def mb(x):
        return f"{x:.1f} MB" if x is not None else "unknown"

    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
    cmd = " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in command)
    benches = " / ".join(f"{x:.2f}" for x in r["bench_images_per_s"])
    bench_others = " / ".join(pct(x) for x in r["bench_other_cpu_fraction"])
    rows = "\n".join(
        f"| {x['round']} | {x['completed']} / {x['requests']} | {x['errors']} | {x['throughput_images_per_s']:.2f} "
        f"| {x['bench_images_per_s']:.2f} | {100 * x['ratio_to_bench']:.1f}% | {x['p50_ms']:.0f} / {x['p99_ms']:.0f} "
        f"| {x['mean_batch_size']:.2f} | {pct(x['model_busy_fraction'])} | {pct(x['server_cpu_fraction'])} "
        f"/ {pct(x['client_cpu_fraction'])} / {pct(x['other_cpu_fraction'])} | {mb(x['rss_max_mb'])} |"
        for x in r["rounds"])
    text = f"""# Server load test: `inception serve` under concurrent clients

Measured {r['date_utc']} by `scripts/load_test.py` (loopback only). {r['clients']} concurrent clients
(one keep-alive connection each) sent `POST /v1/classify` requests with the sample JPEGs of `Samples/`
in turn: {r['warmup']} warm-up requests, then {len(r['rounds'])} measured rounds of {r['requests_per_round']}.
`inception bench --batch-size {r['max_batch']} --json` ran with the same weights before the first round
and after each round (the server idle meanwhile). The machine is shared, and both measurements dip
whenever other work runs, so the target compares the best round with the best bench run; each
round's ratio to the mean of the bench runs on either side of it is in the second table.

| measure | value |
|---|---:|
| requests completed (200) | {r['completed']} of {r['requests']} |
| errors (must be 0) | {r['errors']} |
| throughput vs `inception bench` (target >= 80%) | **{100 * r['ratio_to_bench']:.1f}%**: best round {r['best_round_images_per_s']:.2f} vs best bench {r['best_bench_images_per_s']:.2f} images/s ({verdict}) |
| median of the per-round ratios | {100 * r['median_round_ratio']:.1f}% |
| throughput, all rounds together | {r['throughput_images_per_s']:.2f} images/s |
| `inception bench` batch {r['max_batch']} runs (others' CPU share) | {benches} images/s ({bench_others}) |
| latency p50 / p90 / p99 / max, all rounds | {lat['p50']:.0f} / {lat['p90']:.0f} / {lat['p99']:.0f} / {lat['max']:.0f} ms |
| server peak RSS (VmHWM) | {mb(r['server_peak_rss_mb'])} (after start {mb(r['server_rss_after_start_mb'])}, at the end {mb(r['server_rss_end_mb'])}) |
| server RSS, max in the first / second half of the rounds | {mb(r['rss_max_first_quarter_mb'])} / {mb(r['rss_max_last_quarter_mb'])} ({r['rss_samples']} samples): {'stable' if r['memory_bounded'] else '**growing**'} |
| server exit after SIGTERM | code {r['server_exit_code']} |
| HTTP statuses | {statuses} |

| round | completed | errors | images/s | bench images/s | ratio | p50 / p99 ms | mean batch | model busy | CPU: server / clients / others | server RSS max |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|
{rows}

*Model busy*: the summed time of the batched forward passes over the round's wall time (from
`/metrics`). *CPU*: shares of the machine's CPU time during the round, from /proc.

Server: `{cmd}`.

## Conditions

- CPU: {r['cpu']}, {r['cores']} cores; load average (1 min) {r['load_avg_before']:.2f} before, {r['load_avg_after']:.2f} after.
  This machine is shared with other work: before each round and each bench run the script waits (at most
  a minute) for a 2 s window with less than 0.3 cores busy, and the ratio compares measurements taken
  side by side; absolute images/s vary with the other load.
- Weights: `{r['weights']}` (speed does not depend on the values); binary `{r['binary']}`.
- Each request is decoded (libjpeg-turbo) and preprocessed (central crop 0.875, bilinear resize to
  224x224) in the server, on the same cores as the model; `inception bench` times the forward pass
  alone on a ready batch. That work, HTTP and JSON are the gap between the two.

Rerun: `swift build -c release --product inception && python3 scripts/load_test.py` (options: `--clients`,
`--requests`, `--rounds`, `--max-batch`, `--max-delay-ms`, `--threads`, `--time-limit`, `--weights`).
"""
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
