#!/usr/bin/env python3
"""Check that a pail topic reads the same in pyarrow, DuckDB and `pail consume`.

    check_analytics.py --store DIR --topic T --pail PATH_TO_PAIL [--keys-partitions N]

DIR is a directory store. The topic's segment objects are read three ways:

  * pyarrow.dataset over DIR/topics/T/ with hive partitioning (partition=N folders),
  * DuckDB: read_parquet('DIR/topics/T/partition=*/*.parquet', hive_partitioning = true),
  * `pail consume T --format json` (base64 fields decoded),

and all three must hold the same (partition, offset, timestamp ms, key, value, headers) rows,
with no duplicates and every partition's offsets contiguous from 0. Every segment file's
key-value metadata must agree with its name, its folder and its rows (topic, partition, base and
last offset, record count, format version 1, the manifest), and `pail topic describe` must agree
with the files. With --keys-partitions N, every keyed record must sit on the partition Kafka's
default partitioner gives its key: (murmur2(key) & 0x7fffffff) % N, with kafka-python's murmur2
as an implementation independent of pail's.

Exit 0 with one summary line on stdout when everything agrees; exit 1 with one line on stderr
naming the first mismatch.
"""

import argparse
import base64
import glob
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict

SEGMENT_NAME = re.compile(r"^(\d{20})-(\d{20})\.parquet$")
PARTITION_DIR = re.compile(r"^partition=(\d+)$")
PAIL_TIMEOUT_S = 300
# How many differing rows a message quotes.
QUOTE = 3


class Mismatch(Exception):
    """The sources disagree, or a file breaks the format."""


def check(cond, message):
    if not cond:
        raise Mismatch(message)


def short(row):
    """A row, trimmed for messages."""
    text = repr(row)
    return text if len(text) <= 300 else text[:297] + "..."


def run_pail(pail, store, *args):
    env = {k: v for k, v in os.environ.items() if k != "PAIL_STORE"}
    try:
        done = subprocess.run(
            [pail, "--store", store, *args],
            capture_output=True,
            timeout=PAIL_TIMEOUT_S,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise Mismatch(f"pail {' '.join(args)} did not finish in {PAIL_TIMEOUT_S} s")
    except OSError as e:
        raise Mismatch(f"cannot run {pail}: {e}")
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().replace("\n", " | ")
        raise Mismatch(f"pail {' '.join(args)} exited {done.returncode}: {err}")
    return done.stdout


def decode(text, encoding, what):
    """A JSON byte field back to bytes (None stays None)."""
    if text is None:
        check(encoding is None, f"{what}: null with encoding {encoding!r}")
        return None
    if encoding == "utf8":
        return text.encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except ValueError as e:
            raise Mismatch(f"{what}: bad base64 {text!r}: {e}")
    raise Mismatch(f"{what}: unknown encoding {encoding!r}")


def headers_tuple(headers, what):
    out = []
    for h in headers:
        key, value = h["key"], h["value"]
        check(isinstance(key, str), f"{what}: header key {key!r} is not text")
        check(value is None or isinstance(value, bytes), f"{what}: header value {value!r}")
        out.append((key, value))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# The three readers. Each returns a list of rows:
#   (partition, offset, timestamp_ms, key, value, headers)


def rows_from_pail(pail, store, topic):
    out = run_pail(pail, store, "consume", topic, "--format", "json")
    rows = []
    for n, line in enumerate(out.decode("utf-8").splitlines(), 1):
        what = f"pail consume line {n}"
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise Mismatch(f"{what} is not JSON ({e}): {line[:200]}")
        check(obj.get("topic") == topic, f"{what}: topic {obj.get('topic')!r}")
        headers = tuple(
            (h["key"], decode(h["value"], h.get("value_encoding"), f"{what} header"))
            for h in obj["headers"]
        )
        rows.append(
            (
                obj["partition"],
                obj["offset"],
                obj["timestamp"],
                decode(obj["key"], obj.get("key_encoding"), f"{what} key"),
                decode(obj["value"], obj.get("value_encoding"), f"{what} value"),
                headers,
            )
        )
    return rows


def rows_from_pyarrow(topic_dir):
    import pyarrow as pa
    import pyarrow.dataset as ds

        # As a user would: the topic folder, hive partitioning, pyarrow's default of skipping names
    # that start with "." or "_" (pail's descriptor and hints). Anything else that is not
    # Parquet makes the dataset fail, which is what we want.
    dataset = ds.dataset(topic_dir, format="parquet", partitioning="hive")
    table = dataset.to_table()
    names = set(table.column_names)
    want = {"partition", "offset", "timestamp", "key", "value", "headers"}
    check(want <= names, f"pyarrow: columns {sorted(names)} lack {sorted(want - names)}")
    ts_type = table.schema.field("timestamp").type
    check(
        pa.types.is_timestamp(ts_type) and ts_type.unit == "ms" and ts_type.tz == "UTC",
        f"pyarrow: timestamp column is {ts_type}, not timestamp[ms, tz=UTC]",
    )
    partitions = table.column("partition").to_pylist()
    offsets = table.column("offset").to_pylist()
    stamps = table.column("timestamp").cast(pa.int64()).to_pylist()
    keys = table.column("key").to_pylist()
    values = table.column("value").to_pylist()
    headers = table.column("headers").to_pylist()
    rows = [
        (p, o, t, k, v, headers_tuple(h, f"pyarrow row {i}"))
        for i, (p, o, t, k, v, h) in enumerate(
            zip(partitions, offsets, stamps, keys, values, headers)
        )
    ]
    return rows, sorted(os.path.abspath(f) for f in dataset.files)


def rows_from_duckdb(topic_dir):
    import duckdb

    pattern = os.path.join(topic_dir, "partition=*", "*.parquet").replace("'", "''")
    con = duckdb.connect()
    try:
        fetched = con.execute(
            'SELECT partition, "offset", epoch_ms("timestamp"), key, value, headers '
            f"FROM read_parquet('{pattern}', hive_partitioning = true)"
        ).fetchall()
    finally:
        con.close()
    rows = []
    for i, (p, o, t, k, v, h) in enumerate(fetched):
        rows.append(
            (
                int(p),
                o,
                t,
                None if k is None else bytes(k),
                None if v is None else bytes(v),
                headers_tuple(
                    [
                        {"key": x["key"], "value": None if x["value"] is None else bytes(x["value"])}
                        for x in h
                    ],
                    f"duckdb row {i}",
                ),
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# Checks.


def no_duplicates(rows, source):
    counts = Counter((r[0], r[1]) for r in rows)
    dups = [k for k, n in counts.items() if n > 1]
    check(
        not dups,
        f"{source}: {len(dups)} (partition, offset) pairs appear more than once, e.g. {dups[:QUOTE]}",
    )


def same_rows(reference, ref_name, other, other_name):
    check(
        len(reference) == len(other),
        f"{other_name} has {len(other)} rows, {ref_name} has {len(reference)}",
    )
    a, b = set(reference), set(other)
    if a != b:
        only_a = sorted(a - b, key=lambda r: (r[0], r[1]))[:QUOTE]
        only_b = sorted(b - a, key=lambda r: (r[0], r[1]))[:QUOTE]
        raise Mismatch(
            f"{ref_name} and {other_name} differ: only in {ref_name}: "
            f"{[short(r) for r in only_a]}; only in {other_name}: {[short(r) for r in only_b]}"
        )


def contiguous(rows, partitions):
    by_partition = defaultdict(list)
    for r in rows:
        by_partition[r[0]].append(r[1])
    for p, offsets in by_partition.items():
        check(0 <= p < partitions, f"a record is on partition {p}; the topic has {partitions}")
        offsets.sort()
        check(
            offsets == list(range(len(offsets))),
            f"partition {p}: offsets are not 0..{len(offsets) - 1} "
            f"(first gap or repeat near {next((i for i, o in enumerate(offsets) if o != i), None)})",
        )
    return {p: len(o) for p, o in by_partition.items()}


def consume_order(rows):
    """pail consume prints each partition in offset order."""
    last = {}
    for r in rows:
        p, o = r[0], r[1]
        check(p not in last or last[p] < o, f"pail consume: partition {p} offset {o} after {last.get(p)}")
        last[p] = o


def check_files(topic_dir, topic, partitions, pyarrow_files):
    """Every segment file's name, folder, metadata and rows agree; returns per-partition stats."""
    import pyarrow.parquet as pq

    files = sorted(os.path.abspath(f) for f in glob.glob(os.path.join(topic_dir, "partition=*", "*.parquet")))
    check(
        files == pyarrow_files,
        f"the glob finds {len(files)} files, pyarrow's dataset {len(pyarrow_files)}: "
        f"{sorted(set(files) ^ set(pyarrow_files))[:QUOTE]}",
    )
    # Nothing but segments lives in a partition folder.
    for entry in sorted(os.listdir(topic_dir)):
        m = PARTITION_DIR.match(entry)
        if not m:
            continue
        for name in sorted(os.listdir(os.path.join(topic_dir, entry))):
            check(SEGMENT_NAME.match(name), f"{entry}/{name} is not a segment object")

    chains = defaultdict(list)
    total_bytes = 0
    for path in files:
        rel = os.path.relpath(path, os.path.dirname(os.path.dirname(topic_dir)))
        folder, name = os.path.basename(os.path.dirname(path)), os.path.basename(path)
        pm, sm = PARTITION_DIR.match(folder), SEGMENT_NAME.match(name)
        check(pm, f"{rel}: folder {folder!r} is not partition=N")
        check(sm, f"{rel}: name is not {{base:020}}-{{version:020}}.parquet")
        partition, base, version = int(pm.group(1)), int(sm.group(1)), int(sm.group(2))
        check(partition < partitions, f"{rel}: partition {partition} of a {partitions}-partition topic")

        pf = pq.ParquetFile(path)
        meta = {k.decode(): v.decode() for k, v in (pf.metadata.metadata or {}).items()}
        rows = pf.metadata.num_rows

        def field(name, rel=rel, meta=meta):
            check(name in meta, f"{rel}: no {name} in the key-value metadata")
            return meta[name]

        check(field("pail.format_version") == "1", f"{rel}: format_version {meta.get('pail.format_version')!r}")
        check(field("pail.topic") == topic, f"{rel}: pail.topic {meta.get('pail.topic')!r}")
        check(field("pail.partition") == str(partition), f"{rel}: pail.partition {meta.get('pail.partition')!r}")
        check(field("pail.base_offset") == str(base), f"{rel}: pail.base_offset {meta.get('pail.base_offset')!r}")
        count = int(field("pail.record_count"))
        last = int(field("pail.last_offset"))
        check(count == rows, f"{rel}: pail.record_count {count} but {rows} rows")
        check(last == base + rows - 1, f"{rel}: pail.last_offset {last} but base {base} and {rows} rows")
        try:
            manifest = json.loads(field("pail.manifest"))
        except ValueError as e:
            raise Mismatch(f"{rel}: pail.manifest is not JSON: {e}")
        for key, want in [
            ("topic", topic),
            ("partition", partition),
            ("version", version),
            ("base_offset", base),
            ("record_count", rows),
            ("next_offset", base + rows),
        ]:
            check(manifest.get(key) == want, f"{rel}: manifest {key} is {manifest.get(key)!r}, not {want!r}")
        offsets = pf.read(columns=["offset"]).column("offset").to_pylist()
        check(
            offsets == list(range(base, last + 1)),
            f"{rel}: offsets are not {base}..{last}: {offsets[:5]}...",
        )
        chains[partition].append((version, base, rows, manifest))
        total_bytes += os.path.getsize(path)

    # Each partition is one chain: versions 1, 2, 3, ..., each starting where the last ended.
    for p, chain in chains.items():
        chain.sort()
        versions = [c[0] for c in chain]
        check(
            versions == list(range(1, len(chain) + 1)),
            f"partition {p}: versions are not 1..{len(chain)}: {versions[:10]}",
        )
        next_offset = 0
        for version, base, rows, manifest in chain:
            check(base == next_offset, f"partition {p} version {version}: base {base}, expected {next_offset}")
            check(
                manifest.get("prior_segments") == version - 1,
                f"partition {p} version {version}: prior_segments {manifest.get('prior_segments')}",
            )
            next_offset = base + rows
    return len(files), total_bytes, {p: len(c) for p, c in chains.items()}


def check_describe(described, topic, counts, segment_files, total_bytes, chain_lengths):
    check(described.get("topic") == topic, f"describe names topic {described.get('topic')!r}")
    parts = described["partitions"]
    check(
        [p["partition"] for p in parts] == list(range(len(parts))),
        f"describe lists partitions {[p['partition'] for p in parts]}",
    )
    for p in parts:
        n = p["partition"]
        check(p["log_start_offset"] == 0, f"describe: partition {n} log start {p['log_start_offset']}")
        check(
            p["next_offset"] == counts.get(n, 0),
            f"describe: partition {n} next offset {p['next_offset']}, but the files hold {counts.get(n, 0)} records",
        )
        check(
            p["segments"] == chain_lengths.get(n, 0),
            f"describe: partition {n} has {p['segments']} segments, the folder {chain_lengths.get(n, 0)}",
        )
    check(
        sum(p["segments"] for p in parts) == segment_files,
        f"describe counts {sum(p['segments'] for p in parts)} segments, the glob {segment_files}",
    )
    check(
        sum(p["bytes"] for p in parts) == total_bytes,
        f"describe counts {sum(p['bytes'] for p in parts)} bytes, the files hold {total_bytes}",
    )


def check_keys(rows, n):
    try:
        from kafka.partitioner.default import murmur2
    except ImportError as e:
        raise Mismatch(f"--keys-partitions needs kafka-python (tests/requirements.txt): {e}")
    keyed = 0
    for r in rows:
        if r[3] is None:
            continue
        keyed += 1
        want = (murmur2(r[3]) & 0x7FFFFFFF) % n
        check(
            r[0] == want,
            f"key {r[3]!r} (offset {r[1]}) is on partition {r[0]}; Kafka's partitioner says {want} of {n}",
        )
    check(keyed > 0, "--keys-partitions was given but no record has a key")
    return keyed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="the directory store")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--pail", required=True, help="path of the pail binary")
    parser.add_argument("--keys-partitions", type=int, metavar="N")
    args = parser.parse_args()

    store = os.path.abspath(args.store)
    topic_dir = os.path.join(store, "topics", args.topic)
    try:
        described = json.loads(run_pail(args.pail, store, "topic", "describe", args.topic, "--format", "json"))
        partitions = described["config"]["partitions"]
        check(len(described["partitions"]) == partitions, "describe: partition list and count disagree")
        if args.keys_partitions is not None:
            check(
                args.keys_partitions == partitions,
                f"--keys-partitions {args.keys_partitions} but topic {args.topic} has {partitions} partitions",
            )

        from_pail = rows_from_pail(args.pail, store, args.topic)
        from_pyarrow, pyarrow_files = rows_from_pyarrow(topic_dir)
        from_duckdb = rows_from_duckdb(topic_dir)
        for rows, name in [(from_pail, "pail consume"), (from_pyarrow, "pyarrow"), (from_duckdb, "duckdb")]:
            no_duplicates(rows, name)
        consume_order(from_pail)
        same_rows(from_pail, "pail consume", from_pyarrow, "pyarrow")
        same_rows(from_pail, "pail consume", from_duckdb, "duckdb")
        counts = contiguous(from_pail, partitions)
        segment_files, total_bytes, chains = check_files(topic_dir, args.topic, partitions, pyarrow_files)
        check_describe(described, args.topic, counts, segment_files, total_bytes, chains)
        keyed = check_keys(from_pail, args.keys_partitions) if args.keys_partitions is not None else None
    except Mismatch as e:
        print(f"check_analytics: FAIL: topic {args.topic}: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a reader choking on a file is a failure too, still one line
        one_line = " ".join(str(e).split())
        print(f"check_analytics: FAIL: topic {args.topic}: {type(e).__name__}: {one_line}", file=sys.stderr)
        return 1

    keys = "" if keyed is None else f"; {keyed} keyed records on their murmur2 partitions"
    print(
        f"check_analytics: OK: topic {args.topic}: {len(from_pail)} records in {segment_files} "
        f"segment files over {partitions} partitions read the same in pail consume, pyarrow and "
        f"DuckDB{keys}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
