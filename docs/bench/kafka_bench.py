#!/usr/bin/env python3
"""Benchmark of `pail kafka` with librdkafka (confluent-kafka) as the client.

    .venv/bin/python docs/bench/kafka_bench.py [--pail target/release/pail] [--records N]
        [--store memory://] [--json out.json] [--groups-only] [--group-runs 3]

Starts one listener on the given store (default: memory://, which lives inside the listener
process), and for each topic shape (1 and 4 partitions) and each pail compression.type (zstd,
lz4) creates a topic through CreateTopics, then:

  * produce: N records of 1 KiB (random lowercase letters, which ZSTD shrinks to about 62%)
    with linger.ms=5, acks=all, no client-side compression, as fast as librdkafka takes them;
    reports MB/s of record values and the acknowledgement latency p50/p99 (librdkafka's own
    per-message latency: from produce() to the delivery report);
  * consume: a fresh consumer assign()s every partition from earliest and reads all N records,
    with confluent-kafka's batch consume() and with kcat (librdkafka in C, no Python per
    record), reporting MB/s of record values.

First, the group-join figure: seconds from a new member's subscribe() to its first record, for
the first member of an empty group and for a third member joining a stable 2-member group (4
partitions holding records, nothing committed), with librdkafka's default heartbeat interval
(3 s: the existing members learn of the new round from a heartbeat) and with 500 ms.

The listener's CPU time is read from /proc before and after each phase, so the table shows
where the time goes: listener CPU seconds per second of wall time (2 = both cores).
"""

import argparse
import json
import os
import random
import string
import subprocess
import sys
import time

RECORD_BYTES = 1024
POOL_BYTES = 16 * 1024 * 1024


def listener_cpu(pid):
    """User + system CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def start_listener(pail, store):
    proc = subprocess.Popen(
        [pail, "--store", store, "kafka", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    line = proc.stdout.readline().decode()
    return proc, line.strip().rsplit(" ", 1)[1]


def create_topic(bootstrap, name, partitions, compression):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1,
                     config={"compression.type": compression})
    for f in admin.create_topics([topic]).values():
        f.result(timeout=30)


def produce(bootstrap, topic, records, pool, pid):
    from confluent_kafka import Producer

    latencies = []

    def on_delivery(err, msg):
        if err:
            raise RuntimeError(f"delivery failed: {err}")
        latencies.append(msg.latency())

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    offsets = [random.randrange(0, POOL_BYTES - RECORD_BYTES) for _ in range(4096)]
    cpu0, t0 = listener_cpu(pid), time.perf_counter()
    for i in range(records):
        o = offsets[i & 4095]
        value = pool[o : o + RECORD_BYTES]
        while True:
            try:
                p.produce(topic, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.005)
        if i & 1023 == 0:
            p.poll(0)
    p.flush(120)
    seconds, cpu = time.perf_counter() - t0, listener_cpu(pid) - cpu0
    latencies.sort()
    assert len(latencies) == records, f"{len(latencies)} of {records} delivered"
    return {
        "produce_mb_s": records * RECORD_BYTES / seconds / 1e6,
        "produce_seconds": seconds,
        "ack_p50_ms": percentile(latencies, 0.50) * 1000,
        "ack_p99_ms": percentile(latencies, 0.99) * 1000,
        "produce_listener_cpu": cpu / seconds,
    }


def consume_python(bootstrap, topic, partitions, records, pid):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  "fetch.max.bytes": 64 * 1024 * 1024, "max.partition.fetch.bytes": 16 * 1024 * 1024})
    c.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
    cpu0, t0 = listener_cpu(pid), time.perf_counter()
    got = nbytes = 0
    while got < records:
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error():
                raise RuntimeError(str(m.error()))
            got += 1
            nbytes += len(m.value())
    seconds, cpu = time.perf_counter() - t0, listener_cpu(pid) - cpu0
    c.close()
    return {"consume_py_mb_s": nbytes / seconds / 1e6, "consume_py_listener_cpu": cpu / seconds}


def consume_kcat(bootstrap, topic, records, pid):
    cpu0, t0 = listener_cpu(pid), time.perf_counter()
    done = subprocess.run(
        ["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
         "-c", str(records), "-f", "%S\\n",
         "-X", "fetch.max.bytes=67108864", "-X", "max.partition.fetch.bytes=16777216"],
        capture_output=True, check=True,
    )
    seconds, cpu = time.perf_counter() - t0, listener_cpu(pid) - cpu0
    sizes = [int(x) for x in done.stdout.split()]
    assert len(sizes) == records, f"kcat read {len(sizes)} of {records}"
    return {"consume_kcat_mb_s": sum(sizes) / seconds / 1e6,
            "consume_kcat_listener_cpu": cpu / seconds}


def first_record_s(bootstrap, group, topic, settings, ready=None):
    """Seconds from a new member's subscribe() to its first record, and the consumer (open)."""
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, **settings})
    start = time.monotonic()
    c.subscribe([topic])
    while True:
        m = c.poll(0.05)
        if m is not None and not m.error():
            return time.monotonic() - start, c
        if time.monotonic() - start > 120:
            raise RuntimeError(f"{group}: no record within 120 s")


def while_polling(consumers, action):
    """Runs `action` while another thread polls `consumers`."""
    import threading

    stop = threading.Event()

    def poll():
        while not stop.is_set():
            for c in consumers:
                c.poll(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        return action()
    finally:
        stop.set()
        poller.join()


def group_join(bootstrap, runs, settings):
    """Time to first record for the first member of an empty group, and for a member joining
    a stable 2-member group (4 partitions, records in every one, nothing committed)."""
    topic = f"bench-group-{settings.get('heartbeat.interval.ms', 'default')}"
    create_topic(bootstrap, topic, 4, "lz4")
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(4000):
        p.produce(topic, value=b"x" * 100, partition=i % 4)
    p.flush(60)
    first, third = [], []
    for run in range(runs):
        group = f"{topic}-{run}"
        t, a = first_record_s(bootstrap, group, topic, settings)
        first.append(t)
        # Members already in the group must keep polling: librdkafka serves their rejoin there.
        _, b = while_polling([a], lambda: first_record_s(bootstrap, group, topic, settings))
        time.sleep(1)  # the two members settle
        t, c = while_polling([a, b], lambda: first_record_s(bootstrap, group, topic, settings))
        third.append(t)
        for x in (a, b, c):
            x.close()
    return {"first_member_s": sorted(first), "third_member_s": sorted(third)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pail", default="target/release/pail")
    ap.add_argument("--store", default="memory://")
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--json")
    ap.add_argument("--groups-only", action="store_true", help="only the group-join figures")
    ap.add_argument("--group-runs", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(1)
    pool = "".join(rng.choice(string.ascii_lowercase) for _ in range(POOL_BYTES)).encode()
    proc, bootstrap = start_listener(args.pail, args.store)
    results = []
    try:
        for label, settings in (("librdkafka defaults (heartbeat 3 s)", {}),
                                ("heartbeat.interval.ms=500", {"heartbeat.interval.ms": 500})):
            row = group_join(bootstrap, args.group_runs, settings)
            row["settings"] = label
            results.append(row)
            print(f"group join, {label}: first member "
                  + ", ".join(f"{t:.2f}" for t in row["first_member_s"])
                  + " s; joining a stable 2-member group "
                  + ", ".join(f"{t:.2f}" for t in row["third_member_s"]) + " s", flush=True)
        for partitions in (() if args.groups_only else (1, 4)):
            for compression in ("zstd", "lz4"):
                topic = f"bench-{partitions}p-{compression}"
                create_topic(bootstrap, topic, partitions, compression)
                row = {"partitions": partitions, "compression": compression, "records": args.records}
                row.update(produce(bootstrap, topic, args.records, pool, proc.pid))
                row.update(consume_python(bootstrap, topic, partitions, args.records, proc.pid))
                row.update(consume_kcat(bootstrap, topic, args.records, proc.pid))
                results.append(row)
                print(
                    f"{partitions}p {compression:5} produce {row['produce_mb_s']:7.1f} MB/s "
                    f"(ack p50 {row['ack_p50_ms']:.1f} ms, p99 {row['ack_p99_ms']:.1f} ms, "
                    f"listener {row['produce_listener_cpu']:.2f} cores)  "
                    f"consume py {row['consume_py_mb_s']:7.1f} MB/s "
                    f"({row['consume_py_listener_cpu']:.2f} cores), "
                    f"kcat {row['consume_kcat_mb_s']:7.1f} MB/s "
                    f"({row['consume_kcat_listener_cpu']:.2f} cores)",
                    flush=True,
                )
    finally:
        proc.kill()
        proc.wait()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
