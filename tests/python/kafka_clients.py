#!/usr/bin/env python3
"""Kafka clients no one here wrote, against `pail kafka` listeners on one store.

    kafka_clients.py --bootstrap HOST:PORT,HOST:PORT --store DIR --pail PAIL [--no-kcat]

For each client (confluent-kafka, kafka-python, kcat) and each Kafka codec (gzip, snappy, lz4,
zstd) a topic is created through confluent's AdminClient (CreateTopics, each with its own
pail compression.type, read back with DescribeConfigs), then records with keys, headers (a
repeated key among them) and binary values are produced with acks=all and idempotence where
the client has it, through the first listener. Then every client consumes every topic from
earliest with a plain assign() (no group) through the second listener, and:

  * every consumer reads exactly the produced records (key, value, headers, timestamp where
    the producer set one), each once, in send order per partition;
  * every consumer reads the same offsets, byte for byte;
  * `pail consume --format json` prints the same records at the same offsets;
  * DuckDB over the segment files holds the same rows.

Exit 0 with one summary line on stdout; exit 1 with one line on stderr naming the first
mismatch.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import time

CODECS = ["gzip", "snappy", "lz4", "zstd"]
# Each topic's segments use a different Parquet codec, so all of them are read back too.
TOPIC_COMPRESSION = {"gzip": "gzip", "snappy": "snappy", "lz4": "lz4", "zstd": "zstd"}
PARTITIONS = 3
RECORDS = 120
TIMEOUT_S = 60
BASE_TS = 1_650_000_000_000


class Mismatch(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Mismatch(message)


def records_for(client, codec):
    """(key, value, headers, timestamp or None) a producer sends. Header values hold no NUL:
    kcat prints them as C strings."""
    out = []
    for i in range(RECORDS):
        key = f"{client}-k{i % 11}".encode()
        if client == "kcat":
            # kcat reads one text line per record and puts the same headers on every one.
            value = f"{client}/{codec}/{i} text".encode()
            headers = [("src", b"kcat"), ("dup", b"1"), ("dup", b"2")]
            ts = None
        else:
            value = bytes([0xFF, 0x00, i % 256]) + f"{client}/{codec}/{i}".encode() * (1 + i % 5)
            headers = [("src", client.encode()), ("dup", b"a"), ("dup", bytes([0x80, 1 + i % 250]))]
            if i % 4 == 0:
                headers.append(("empty", b""))
            ts = BASE_TS + i
        out.append((key, value, headers, ts))
    return out


# --- producers ----------------------------------------------------------------------------


def produce_confluent(bootstrap, topic, codec, records):
    from confluent_kafka import Producer

    errors = []
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": codec,
            "linger.ms": 5,
        }
    )
    for key, value, headers, ts in records:
        p.produce(
            topic,
            value=value,
            key=key,
            headers=headers,
            timestamp=ts,
            on_delivery=lambda err, msg: errors.append(err) if err else None,
        )
    left = p.flush(TIMEOUT_S)
    check(left == 0 and not errors, f"confluent-kafka {codec}: {left} undelivered, errors {errors[:3]}")


def produce_kafka_python(bootstrap, topic, codec, records):
    from kafka import KafkaProducer

    p = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        enable_idempotence=True,
        compression_type=codec,
        linger_ms=5,
    )
    futures = [
        p.send(topic, value=value, key=key, headers=headers, timestamp_ms=ts)
        for key, value, headers, ts in records
    ]
    for f in futures:
        f.get(timeout=TIMEOUT_S)
    p.close()


def produce_kcat(bootstrap, topic, codec, records):
    lines = b"".join(key + b"\t" + value + b"\n" for key, value, _, _ in records)
    args = ["kcat", "-b", bootstrap, "-P", "-t", topic, "-K", "\t", "-z", codec]
    args += ["-X", "enable.idempotence=true", "-X", "acks=all"]
    for k, v in records[0][2]:
        args += ["-H", f"{k}={v.decode()}"]
    done = subprocess.run(args, input=lines, capture_output=True, timeout=TIMEOUT_S)
    check(done.returncode == 0, f"kcat produce {codec}: {done.stderr.decode()[-300:]}")


# --- consumers ----------------------------------------------------------------------------


def consume_confluent(bootstrap, topic, expected):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",  # required by the client; no group API is called with assign()
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    c.assign([TopicPartition(topic, p, -2) for p in range(PARTITIONS)])
    out, eof, deadline = [], set(), time.time() + TIMEOUT_S
    while len(out) < expected or len(eof) < PARTITIONS:
        check(time.time() < deadline, f"confluent-kafka consumed {len(out)} of {expected} from {topic}")
        msg = c.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == -191:  # _PARTITION_EOF
                eof.add(msg.partition())
                continue
            raise Mismatch(f"confluent-kafka consume {topic}: {msg.error()}")
        eof.discard(msg.partition())
        out.append(
            (msg.partition(), msg.offset(), msg.key(), msg.value(),
             [(k, v) for k, v in (msg.headers() or [])], msg.timestamp()[1])
        )
    c.close()
    return out


def consume_kafka_python(bootstrap, topic, expected):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    out, deadline = [], time.time() + TIMEOUT_S
    while len(out) < expected:
        check(time.time() < deadline, f"kafka-python consumed {len(out)} of {expected} from {topic}")
        for tp, msgs in c.poll(timeout_ms=1000).items():
            for m in msgs:
                out.append((tp.partition, m.offset, m.key, m.value, list(m.headers), m.timestamp))
    c.close()
    return out


# kcat prints headers as k=v,k=v with the raw bytes: compared in that form (kcat_view).
KCAT_END = b"@@END@@\n"


def consume_kcat(bootstrap, topic, expected):
    fmt = "%p\\t%o\\t%T\\t%K\\t%S\\t%k\\t%s\\t%h@@END@@\\n"
    done = subprocess.run(
        ["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt],
        capture_output=True,
        timeout=TIMEOUT_S,
    )
    check(done.returncode == 0, f"kcat consume {topic}: {done.stderr.decode()[-300:]}")
    # Keys and values may hold any byte: cut them by the printed lengths.
    out = []
    for chunk in done.stdout.split(KCAT_END)[:-1]:
        p, o, ts, klen, vlen, body = chunk.split(b"\t", 5)
        klen, vlen = int(klen), int(vlen)
        key = None if klen < 0 else body[:klen]
        body = body[max(klen, 0) + 1 :]
        value = None if vlen < 0 else body[:vlen]
        headers = body[max(vlen, 0) + 1 :]
        out.append((int(p), int(o), key, value, [("kcat", headers)], int(ts)))
    check(len(out) == expected, f"kcat consumed {len(out)} of {expected} from {topic}")
    return out


def kcat_view(rows):
    """Rows with their headers rendered as kcat prints them."""
    return [
        (p, o, k, v, [("kcat", b",".join(hk.encode() + b"=" + (hv or b"") for hk, hv in hs))], ts)
        for p, o, k, v, hs, ts in rows
    ]


# --- pail and DuckDB ----------------------------------------------------------------------


def b64(text, encoding):
    if text is None:
        return None
    return text.encode() if encoding == "utf8" else base64.b64decode(text)


def consume_pail(pail, store, topic):
    env = {k: v for k, v in os.environ.items() if k != "PAIL_STORE"}
    done = subprocess.run(
        [pail, "--store", store, "consume", topic, "--format", "json"],
        capture_output=True, timeout=TIMEOUT_S, env=env,
    )
    check(done.returncode == 0, f"pail consume {topic}: {done.stderr.decode()[-300:]}")
    out = []
    for line in done.stdout.splitlines():
        r = json.loads(line)
        headers = [(h["key"], b64(h["value"], h["value_encoding"])) for h in r["headers"]]
        out.append((r["partition"], r["offset"], b64(r["key"], r["key_encoding"]),
                    b64(r["value"], r["value_encoding"]), headers, r["timestamp"]))
    return out


def read_duckdb(store, topic):
    import duckdb

    rows = duckdb.sql(
        f"""SELECT partition, "offset", epoch_ms("timestamp"), key, value, headers
            FROM read_parquet('{store}/topics/{topic}/partition=*/*.parquet', hive_partitioning = true)"""
    ).fetchall()
    return [
        (int(p), o, k, v, [(h["key"], h["value"]) for h in hs], ts)
        for p, o, ts, k, v, hs in rows
    ]


def check_offsets_for_times(bootstrap, topic, reference):
    """kafka-python's offsets_for_times (ListOffsets by timestamp) against a scan of what pail
    consume printed: per partition, the smallest offset stamped at or after T, or None."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        stamps = sorted({r[5] for r in reference})
        for t in [stamps[0] - 1, stamps[len(stamps) // 2], stamps[-1], stamps[-1] + 1]:
            parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            got = c.offsets_for_times({tp: t for tp in parts})
            for tp in parts:
                want = min((r[1] for r in reference if r[0] == tp.partition and r[5] >= t),
                           default=None)
                found = got.get(tp)
                check((found.offset if found else None) == want,
                      f"offsets_for_times({topic}/{tp.partition}, {t}): {found}, not {want}")
    finally:
        c.close()


# --- comparing ----------------------------------------------------------------------------


def canonical(rows):
    """Rows sorted by (partition, offset), bytes as bytes, headers as (str, bytes or None)."""
    def norm(b):
        return None if b is None else bytes(b)

    return sorted(
        (p, o, norm(k), norm(v), [(hk, norm(hv)) for hk, hv in hs], ts)
        for p, o, k, v, hs, ts in rows
    )


def check_against_sent(who, topic, rows, sent):
    check(len(rows) == len(sent), f"{who} read {len(rows)} records of {topic}, {len(sent)} were sent")
    by_payload = {}
    for key, value, headers, ts in sent:
        by_payload.setdefault((key, value), []).append((headers, ts))
    seen = set()
    last_index = {}
    index_of = {(k, v): i for i, (k, v, _, _) in enumerate(sent)}
    for p, o, k, v, hs, ts in rows:
        check((k, v) in by_payload, f"{who} read a record no one sent in {topic}: {k!r} {v[:40]!r}")
        check((k, v) not in seen, f"{who} read a record twice in {topic}: {k!r} at {p}/{o}")
        seen.add((k, v))
        headers, sent_ts = by_payload[(k, v)][0]
        check(hs == headers, f"{who} {topic} {p}/{o}: headers {hs!r} != sent {headers!r}")
        if sent_ts is not None:
            check(ts == sent_ts, f"{who} {topic} {p}/{o}: timestamp {ts} != sent {sent_ts}")
        i = index_of[(k, v)]
        check(last_index.get(p, -1) < i, f"{who} {topic} partition {p}: out of send order at offset {o}")
        last_index[p] = i


def first_difference(got, want):
    for a, b in zip(got, want):
        if a != b:
            return f"{a!r} != {b!r}"[:400]
    return f"{len(got)} records != {len(want)}"


def create_topics(bootstrap, names):
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [
        NewTopic(name, num_partitions=PARTITIONS, replication_factor=1,
                 config={"compression.type": TOPIC_COMPRESSION[codec]})
        for name, codec in names
    ]
    for name, f in admin.create_topics(new, request_timeout=TIMEOUT_S).items():
        f.result(timeout=TIMEOUT_S)
    # DescribeConfigs shows each topic's codec.
    resources = [ConfigResource("topic", name) for name, _ in names]
    for res, f in admin.describe_configs(resources).items():
        configs = f.result(timeout=TIMEOUT_S)
        codec = dict(names)[res.name]
        got = configs["compression.type"].value
        check(got == TOPIC_COMPRESSION[codec], f"{res.name}: compression.type {got!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True, help="two listeners: HOST:PORT,HOST:PORT")
    ap.add_argument("--store", required=True)
    ap.add_argument("--pail", required=True)
    ap.add_argument("--no-kcat", action="store_true")
    args = ap.parse_args()
    produce_via, consume_via = args.bootstrap.split(",")
    producers = {"confluent": produce_confluent, "kafka-python": produce_kafka_python}
    consumers = {"confluent": consume_confluent, "kafka-python": consume_kafka_python}
    if not args.no_kcat:
        producers["kcat"] = produce_kcat
        consumers["kcat"] = consume_kcat
    try:
        topics = [(f"{client}-{codec}", client, codec) for client in producers for codec in CODECS]
        create_topics(produce_via, [(t, codec) for t, _, codec in topics])
        for topic, client, codec in topics:
            producers[client](produce_via, topic, codec, records_for(client, codec))
        total = 0
        for topic, client, codec in topics:
            sent = records_for(client, codec)
            reference = canonical(consume_pail(args.pail, args.store, topic))
            check_against_sent("pail consume", topic, reference, sent)
            for name, consume in consumers.items():
                got = canonical(consume(consume_via, topic, len(sent)))
                want = kcat_view(reference) if name == "kcat" else reference
                check(got == want, f"{name} and pail consume differ on {topic}: "
                      f"{first_difference(got, want)}")
            if client == "kafka-python":
                check_offsets_for_times(consume_via, topic, reference)
            got = canonical(read_duckdb(args.store, topic))
            check(got == reference, f"DuckDB and pail consume differ on {topic}: "
                  f"{first_difference(got, reference)}")
            total += len(sent)
    except Mismatch as e:
        print(f"kafka_clients: FAIL: {e}", file=sys.stderr)
        return 1
    print(
        f"kafka_clients: OK: {total} records in {len(topics)} topics produced by "
        f"{', '.join(producers)} and read back identically by {', '.join(consumers)}, "
        "pail consume and DuckDB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
