#!/usr/bin/env python3
"""Sweep `pail bench produce` over batch size and linger on a simulated S3 and draw the chart
in docs/bench/batch-linger.png (data in docs/bench/batch-linger.json).

    cargo build --release -p pail-functions
    .venv/bin/pip install -r docs/bench/requirements.txt
    .venv/bin/python docs/bench/sweep.py [--pail target/release/pail] [--store sim:s3-standard]

Two runs per (batch, linger) point, 4 partitions, 1 KiB records:
  throughput: closed loop (8 senders, as fast as acknowledgements allow);
  latency:    open loop at 5,000 records/s (5 MB/s), acknowledgement p50/p99.
"""
import argparse
import json
import pathlib
import subprocess
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
BATCHES = [64 << 10, 256 << 10, 1 << 20, 4 << 20]
LINGERS = [0, 5, 50, 250]
PARTITIONS = 4


def bench(pail, store, mode_args):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [pail, "--store", store, "bench", "produce", "--quiet", "--reference-puts", "0",
               "--partitions", str(PARTITIONS), "--json", out.name] + mode_args
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.load(open(out.name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pail", default=str(HERE.parent.parent / "target/release/pail"))
    ap.add_argument("--store", default="sim:s3-standard")
    args = ap.parse_args()
    points = []
    for batch in BATCHES:
        for linger in LINGERS:
            common = ["--batch-bytes", str(batch), "--linger-ms", str(linger)]
            # Enough records for about 30 full commits per partition.
            records = max(20_000, batch // 1024 * PARTITIONS * 30)
            saturated = bench(args.pail, args.store, common + ["--senders", "8", "--records", str(records)])
            paced = bench(args.pail, args.store, common + ["--rate", "5000", "--records", "15000"])
            point = {
                "batch_bytes": batch,
                "linger_ms": linger,
                "mb_per_s": saturated["mb_per_s"],
                "commits_per_s": saturated["commits_per_s"],
                "ack_p50_ms": paced["ack_latency"]["p50_ms"],
                "ack_p99_ms": paced["ack_latency"]["p99_ms"],
                "puts_per_gb_at_5mb_s": paced["produce_cost"]["puts_per_gb"],
            }
            print(json.dumps(point))
            points.append(point)
    (HERE / "batch-linger.json").write_text(json.dumps({"store": args.store, "points": points}, indent=2))
    draw(points, args.store)


def draw(points, store):
    fig, (left, right, cost) = plt.subplots(1, 3, figsize=(15, 4.4))
    for i, linger in enumerate(LINGERS):
        row = [p for p in points if p["linger_ms"] == linger]
        x = [p["batch_bytes"] / 1024 for p in row]
        color = f"C{i}"
        left.plot(x, [p["mb_per_s"] for p in row], marker="o", color=color, label=f"linger {linger} ms")
        right.plot(x, [p["ack_p99_ms"] for p in row], marker="o", color=color, label=f"p99, linger {linger} ms")
        right.plot(x, [p["ack_p50_ms"] for p in row], marker=".", color=color, linestyle=":",
                   label=f"p50, linger {linger} ms")
        cost.plot(x, [p["puts_per_gb_at_5mb_s"] for p in row], marker="o", color=color, label=f"linger {linger} ms")
    cost.set_ylabel("PUTs per GB")
    cost.set_title("Object writes per GB at 5,000 records/s")
    cost.set_yscale("log")
    cost.legend()
    for ax in (left, right, cost):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size limit (KiB)")
        ax.grid(True, alpha=0.3)
    left.set_ylabel("MB/s (closed loop, 4 partitions)")
    left.set_title("Produce throughput")
    right.set_ylabel("ms")
    right.set_title("Acknowledgement latency at 5,000 records/s")
    left.legend()
    right.legend(fontsize=7)
    fig.suptitle(f"pail produce on {store}, 1 KiB records")
    fig.tight_layout()
    fig.savefig(HERE / "batch-linger.png", dpi=110)


if __name__ == "__main__":
    main()
