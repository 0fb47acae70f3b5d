#!/usr/bin/env python3
"""Check that a pail topic's Delta Lake view holds exactly the records `pail consume` prints.

    check_delta.py --store STORE --topic T --pail PATH_TO_PAIL --until P=N[,P=N...]
                   [--version V] [--checkpoint]

STORE is a directory store or an s3://bucket/prefix URL (then the standard AWS variables and
AWS_ENDPOINT_URL name the server). The table at STORE/topics/T is read two ways:

  * deltalake: DeltaTable(path).to_pyarrow_table(),
  * polars: pl.read_delta(path),

and both must hold exactly the (partition, offset, timestamp ms, key, value, headers) rows that
`pail consume T --format json` prints with an offset below the partition's N in --until (the
next offset of each partition at the last sync: records committed after it are not in the
table yet). Filters on offset and timestamp through polars' lazy scan (which prunes files by
their stats) must return exactly the matching records. With --version the table must be at that version; with --checkpoint its
_last_checkpoint must name a checkpoint, which deltalake then loads from.

Exit 0 with one summary line on stdout when everything agrees; exit 1 with one line on stderr
naming the first mismatch.
"""

import argparse
import base64
import json
import os
import subprocess
import sys

PAIL_TIMEOUT_S = 300


class Mismatch(Exception):
    """The readers disagree, or the table breaks the expected layout."""


def check(cond, message):
    if not cond:
        raise Mismatch(message)


def run_pail(pail, store, *args):
    env = {k: v for k, v in os.environ.items() if k != "PAIL_STORE"}
    try:
        done = subprocess.run(
            [pail, "--store", store, *args], capture_output=True, timeout=PAIL_TIMEOUT_S, env=env
        )
    except subprocess.TimeoutExpired:
        raise Mismatch(f"pail {' '.join(args)} did not finish in {PAIL_TIMEOUT_S} s")
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().replace("\n", " | ")
        raise Mismatch(f"pail {' '.join(args)} exited {done.returncode}: {err}")
    return done.stdout


def decode(text, encoding):
    if text is None:
        return None
    if encoding == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8")


def rows_from_pail(pail, store, topic, until):
    rows = []
    out = run_pail(pail, store, "consume", topic, "--format", "json")
    for line in out.decode("utf-8").splitlines():
        obj = json.loads(line)
        p, offset = obj["partition"], obj["offset"]
        if offset >= until.get(p, 0):
            continue
        headers = tuple(
            (h["key"], decode(h["value"], h.get("value_encoding"))) for h in obj["headers"]
        )
        key = decode(obj["key"], obj.get("key_encoding"))
        value = decode(obj["value"], obj.get("value_encoding"))
        rows.append((p, offset, obj["timestamp"], key, value, headers))
    return sorted(rows)


def headers_tuple(headers):
    return tuple((h["key"], h["value"]) for h in headers or [])


def storage_options(store):
    """deltalake and polars options for an S3 store (None for a directory)."""
    if not store.startswith("s3://"):
        return None
    opts = {
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "AWS_REGION": os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["AWS_ENDPOINT_URL"] = endpoint
        opts["AWS_ALLOW_HTTP"] = "true"
    # pail commits with create-if-absent itself; readers never write, so no locking is needed.
    opts["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"
    return opts


def rows_from_deltalake(path, options):
    import pyarrow as pa
    from deltalake import DeltaTable

    dt = DeltaTable(path, storage_options=options)
    table = dt.to_pyarrow_table()
    names = set(table.column_names)
    want = {"partition", "offset", "timestamp", "key", "value", "headers"}
    check(want <= names, f"deltalake: columns {sorted(names)} lack {sorted(want - names)}")
    stamps = table.column("timestamp").cast(pa.timestamp("ms", "UTC")).cast(pa.int64())
    columns = [
        table.column("partition").to_pylist(),
        table.column("offset").to_pylist(),
        stamps.to_pylist(),
        table.column("key").to_pylist(),
        table.column("value").to_pylist(),
        table.column("headers").to_pylist(),
    ]
    rows = [(p, o, t, k, v, headers_tuple(h)) for p, o, t, k, v, h in zip(*columns)]
    return sorted(rows), dt


def rows_from_polars(path, options):
    import polars as pl

    df = pl.read_delta(path, storage_options=options)
    df = df.with_columns(pl.col("timestamp").dt.epoch("ms").alias("timestamp"))
    rows = [
        (r["partition"], r["offset"], r["timestamp"], r["key"], r["value"], headers_tuple(r["headers"]))
        for r in df.iter_rows(named=True)
    ]
    return sorted(rows)


def filtered_reads(path, options, want):
    """Filters on offset and timestamp (which the files' stats let readers prune by) return
    exactly the matching records: wrong stats would drop files."""
    import datetime
    import polars as pl

    if not want:
        return
    mid_offset = sorted(r[1] for r in want)[len(want) // 2]
    mid_ts = sorted(r[2] for r in want)[len(want) // 2]
    at = datetime.datetime.fromtimestamp(mid_ts / 1000, tz=datetime.timezone.utc)
    lazy = pl.scan_delta(path, storage_options=options)
    for name, expr, keep in [
        (f"offset >= {mid_offset}", pl.col("offset") >= mid_offset, lambda r: r[1] >= mid_offset),
        (f"timestamp >= {at}", pl.col("timestamp") >= at, lambda r: r[2] >= mid_ts),
        (f"timestamp < {at}", pl.col("timestamp") < at, lambda r: r[2] < mid_ts),
    ]:
        got = lazy.filter(expr).select("partition", "offset").collect()
        got = sorted(zip(got["partition"].to_list(), got["offset"].to_list()))
        expected = sorted((r[0], r[1]) for r in want if keep(r))
        check(got == expected, f"polars filter {name}: {len(got)} rows, expected {len(expected)}")


def same_rows(want, want_name, got, got_name):
    if want == got:
        return
    missing = sorted(set(want) - set(got))[:3]
    extra = sorted(set(got) - set(want))[:3]
    raise Mismatch(
        f"{got_name} holds {len(got)} rows, {want_name} {len(want)}; "
        f"missing {missing!r}; extra {extra!r}"[:1500]
    )


def table_path(store, topic):
    if store.startswith("s3://"):
        return store.rstrip("/") + f"/topics/{topic}"
    return os.path.join(os.path.abspath(store), "topics", topic)


def checkpoint_hint(store, topic, options):
    """The version _last_checkpoint names (directory stores read it directly)."""
    if store.startswith("s3://"):
        import boto3

        bucket, _, prefix = store[len("s3://"):].partition("/")
        key = "/".join(p for p in [prefix.strip("/"), "topics", topic, "_delta_log/_last_checkpoint"] if p)
        s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return json.loads(body)["version"]
    with open(os.path.join(table_path(store, topic), "_delta_log", "_last_checkpoint")) as f:
        return json.load(f)["version"]


def checkpoint_alone(path, hint, expected):
    """A directory table's log without the commits its checkpoint covers (data folders linked)
    must read the same: proof that deltalake loads the checkpoint, not the JSON behind it."""
    import shutil
    import tempfile
    from deltalake import DeltaTable

    with tempfile.TemporaryDirectory() as tmp:
        for name in os.listdir(path):
            if name != "_delta_log":
                os.symlink(os.path.join(path, name), os.path.join(tmp, name))
        os.mkdir(os.path.join(tmp, "_delta_log"))
        for name in os.listdir(os.path.join(path, "_delta_log")):
            stem = name.split(".")[0]
            if name.endswith(".json") and stem.isdigit() and int(stem) <= hint:
                continue
            shutil.copy(os.path.join(path, "_delta_log", name), os.path.join(tmp, "_delta_log"))
        table = DeltaTable(tmp).to_pyarrow_table()
        got = sorted(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()))
    want = sorted((r[0], r[1]) for r in expected)
    check(got == want, f"from the checkpoint alone: {len(got)} rows, expected {len(want)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--pail", required=True)
    ap.add_argument("--until", required=True, help="P=N,...: each partition's next offset at the last sync")
    ap.add_argument("--version", type=int)
    ap.add_argument("--checkpoint", action="store_true")
    args = ap.parse_args()
    try:
        until = {}
        for part in filter(None, args.until.split(",")):
            p, n = part.split("=")
            until[int(p)] = int(n)
        path = table_path(args.store, args.topic)
        options = storage_options(args.store)
        want = rows_from_pail(args.pail, args.store, args.topic, until)
        check(len(set(want)) == len(want), "pail consume printed a record twice")
        from_deltalake, dt = rows_from_deltalake(path, options)
        same_rows(want, "pail consume", from_deltalake, "deltalake")
        from_polars = rows_from_polars(path, options)
        same_rows(want, "pail consume", from_polars, "polars")
        filtered_reads(path, options, want)
        if args.version is not None:
            check(dt.version() == args.version, f"table version {dt.version()}, expected {args.version}")
        if args.checkpoint:
            hint = checkpoint_hint(args.store, args.topic, options)
            check(0 < hint <= dt.version(), f"_last_checkpoint names {hint}, table at {dt.version()}")
            if options is None:
                checkpoint_alone(path, hint, want)
    except Mismatch as e:
        print(f"check_delta: {e}", file=sys.stderr)
        return 1
    files = len(dt.file_uris())
    print(
        f"check_delta: {len(want)} records in {files} files read the same in pail consume, "
        f"deltalake and polars (table version {dt.version()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
