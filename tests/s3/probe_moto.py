#!/usr/bin/env python3
"""Probe which S3 behaviours the moto server supports (the ones pail relies on).

    tests/s3/start.sh /tmp/s3 && . /tmp/s3/env
    .venv/bin/python tests/s3/probe_moto.py        # uses $AWS_ENDPOINT_URL
    tests/s3/stop.sh /tmp/s3

Prints one "PASS|FAIL <id> <what> -- <observed>" line per check and a closing
"N passed, N failed" line; exits 1 if any check failed. Works in its own key
prefix (probe-<random>/) inside bucket pail-test, so it can run repeatedly.
"""

import hashlib
import os
import sys
import threading
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL") or sys.exit("probe_moto.py: AWS_ENDPOINT_URL not set (source STATE/env)")
BUCKET = "pail-test"
PREFIX = f"probe-{uuid.uuid4().hex[:8]}/"

CONFIG = Config(
    region_name="us-east-1",
    signature_version="s3v4",
    s3={"addressing_style": "path"},  # like object_store's virtual_hosted_style_request=false
    retries={"total_max_attempts": 1},  # no retries: a retried conditional PUT would hide results
    # Send no x-amz-checksum-* headers by default, like object_store.
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
)


def client(key="test", secret="test"):
    return boto3.client(
        "s3", endpoint_url=ENDPOINT, aws_access_key_id=key, aws_secret_access_key=secret, config=CONFIG
    )


s3 = client()
results = []


def check(cid, what, ok, observed):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {cid} {what} -- {observed}", flush=True)


def err(e):
    """(HTTP status, S3 error code) of a ClientError."""
    return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Code")


def put(key, body, **kw):
    """PutObject; returns (status, etag or error code)."""
    try:
        r = s3.put_object(Bucket=BUCKET, Key=PREFIX + key, Body=body, **kw)
        return r["ResponseMetadata"]["HTTPStatusCode"], r.get("ETag")
    except ClientError as e:
        return err(e)


# a. If-None-Match: * (create-only)
st = put("a", b"first", IfNoneMatch="*")
check("a1", "PutObject IfNoneMatch=* on new key succeeds", st[0] == 200, f"status {st[0]}")
st = put("a", b"second", IfNoneMatch="*")
check("a2", "PutObject IfNoneMatch=* on existing key -> 412", st[0] == 412, f"status {st[0]}, code {st[1]!r}")
body = s3.get_object(Bucket=BUCKET, Key=PREFIX + "a")["Body"].read()
check("a3", "failed create left the object unchanged", body == b"first", f"body {body!r}")

# b. If-Match (compare-and-swap)
_, etag = put("b", b"v1")
st = put("b", b"v2", IfMatch=etag)
check("b1", "PutObject IfMatch=<current etag> succeeds", st[0] == 200, f"status {st[0]}, new etag {st[1]}")
st2 = put("b", b"v3", IfMatch=etag)  # stale etag now
check("b2", "PutObject IfMatch=<stale etag> -> 412", st2[0] == 412, f"status {st2[0]}, code {st2[1]!r}")
st3 = put("b", b"v3", IfMatch=st[1].strip('"'))
check("b3", "PutObject IfMatch=<current etag, unquoted> succeeds", st3[0] == 200, f"status {st3[0]}")
st = put("b-missing", b"x", IfMatch=etag)
# Real S3 answers 404 NoSuchKey here.
check("b4", "PutObject IfMatch on missing key -> 404 NoSuchKey", st == (404, "NoSuchKey"), f"status {st[0]}, code {st[1]!r}")

# c. Suffix ranges (object_store GetRange::Suffix sends "bytes=-N")
small = os.urandom(100)
big = os.urandom(200 * 1024)
put("c-small", small)
put("c-big", big)
r = s3.get_object(Bucket=BUCKET, Key=PREFIX + "c-small", Range="bytes=-65536")
b = r["Body"].read()
st = r["ResponseMetadata"]["HTTPStatusCode"]
check("c1", "Range bytes=-65536 on 100 B object -> whole object", b == small,
      f"status {st}, body {len(b)} B, Content-Range {r.get('ContentRange')!r}")
r = s3.get_object(Bucket=BUCKET, Key=PREFIX + "c-big", Range="bytes=-65536")
b = r["Body"].read()
st = r["ResponseMetadata"]["HTTPStatusCode"]
cr = r.get("ContentRange")
check("c2", "Range bytes=-65536 on 200 KiB object -> 206, last 65536 B", st == 206 and b == big[-65536:],
      f"status {st}, body {len(b)} B, Content-Range {cr!r}")
check("c3", "Content-Range total size = object size", cr == f"bytes {len(big) - 65536}-{len(big) - 1}/{len(big)}", f"{cr!r}")
r = s3.get_object(Bucket=BUCKET, Key=PREFIX + "c-big", Range="bytes=100-199")
b = r["Body"].read()
check("c4", "Range bytes=100-199 -> 206, 100 B", r["ResponseMetadata"]["HTTPStatusCode"] == 206 and b == big[100:200],
      f"status {r['ResponseMetadata']['HTTPStatusCode']}, Content-Range {r.get('ContentRange')!r}")
try:
    s3.get_object(Bucket=BUCKET, Key=PREFIX + "c-small", Range="bytes=200-299")
    check("c5", "Range starting past the end -> 416 InvalidRange", False, "got 2xx")
except ClientError as e:
    check("c5", "Range starting past the end -> 416 InvalidRange", err(e) == (416, "InvalidRange"), f"{err(e)}")

# d. ListObjectsV2 StartAfter + pagination. Keys chosen to test byte order:
#    '-' (0x2d) < '/' (0x2f) < '0' < 'A' < '_' < 'a'.
keys = sorted(["l/a", "l/a-b", "l/a/b", "l/a0", "l/A", "l/_", "l/b", "l/c", "l/0000000000000000001", "l/0000000000000000010"],
              key=lambda k: k.encode())
for k in keys:
    put(k, k.encode())
full = [PREFIX + k for k in keys]


def list_all(**kw):
    out, token, pages = [], None, 0
    while True:
        args = dict(Bucket=BUCKET, Prefix=PREFIX + "l/", **kw)
        if token:
            args["ContinuationToken"] = token
        r = s3.list_objects_v2(**args)
        pages += 1
        out += [o["Key"] for o in r.get("Contents", [])]
        if not r.get("IsTruncated"):
            return out, pages
        token = r["NextContinuationToken"]


got, _ = list_all()
check("d1", "ListObjectsV2 returns keys in UTF-8 byte order", got == full, f"{[k[len(PREFIX):] for k in got]}")
after = PREFIX + "l/a-b"
got, _ = list_all(StartAfter=after)
check("d2", "StartAfter=<existing key> -> keys strictly after, sorted", got == [k for k in full if k.encode() > after.encode()],
      f"{len(got)} keys, first {got[0][len(PREFIX):] if got else None!r}")
after = PREFIX + "l/a-c"  # not a key
got, _ = list_all(StartAfter=after)
check("d3", "StartAfter=<non-existent key> -> keys strictly after", got == [k for k in full if k.encode() > after.encode()],
      f"{len(got)} keys, first {got[0][len(PREFIX):] if got else None!r}")
got, pages = list_all(MaxKeys=2)
check("d4", "MaxKeys=2 + ContinuationToken pages through everything", got == full and pages == 5, f"{len(got)} keys in {pages} pages")
after = PREFIX + "l/a"
got, pages = list_all(MaxKeys=2, StartAfter=after)
check("d5", "MaxKeys=2 + StartAfter + ContinuationToken", got == [k for k in full if k.encode() > after.encode()],
      f"{len(got)} keys in {pages} pages")

# e. Delimiter
r = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "l/", Delimiter="/")
cps = [p["Prefix"] for p in r.get("CommonPrefixes", [])]
direct = [o["Key"] for o in r.get("Contents", [])]
check("e1", "Delimiter='/' -> CommonPrefixes", cps == [PREFIX + "l/a/"] and PREFIX + "l/a/b" not in direct,
      f"CommonPrefixes {[p[len(PREFIX):] for p in cps]}, {len(direct)} direct keys")
r = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX, Delimiter="/")
cps = [p["Prefix"] for p in r.get("CommonPrefixes", [])]
check("e2", "Delimiter='/' at probe root lists sub-prefixes", PREFIX + "l/" in cps, f"{[p[len(PREFIX):] for p in cps]}")

# f. Errors and auth
try:
    s3.head_object(Bucket=BUCKET, Key=PREFIX + "nope")
    check("f1", "HEAD missing key -> 404", False, "got 2xx")
except ClientError as e:
    check("f1", "HEAD missing key -> 404", err(e)[0] == 404, f"{err(e)}")
try:
    s3.get_object(Bucket=BUCKET, Key=PREFIX + "nope")
    check("f2", "GET missing key -> 404 NoSuchKey", False, "got 2xx")
except ClientError as e:
    check("f2", "GET missing key -> 404 NoSuchKey", err(e) == (404, "NoSuchKey"), f"{err(e)}")
try:
    s3.get_object(Bucket="no-such-bucket-pail", Key="x")
    check("f3", "GET on missing bucket -> NoSuchBucket", False, "got 2xx")
except ClientError as e:
    check("f3", "GET on missing bucket -> NoSuchBucket", err(e)[1] == "NoSuchBucket", f"{err(e)}")
try:
    client("WRONGKEY", "wrongsecret").list_objects_v2(Bucket=BUCKET, MaxKeys=1)
    # Not a failure of the probe: it documents that moto does not check signatures.
    check("f4", "wrong credentials rejected?", True, "NO: accepted (moto does not verify credentials by default)")
except ClientError as e:
    check("f4", "wrong credentials rejected?", True, f"yes: {err(e)}")

# g. Race: 16 threads PUT IfNoneMatch=* on the same key, 20 rounds.
THREADS, ROUNDS = 16, 20
clients = [client() for _ in range(THREADS)]
bad_rounds, other = [], set()
for rnd in range(ROUNDS):
    key = f"{PREFIX}race/{rnd}"
    barrier = threading.Barrier(THREADS)
    outcome = [None] * THREADS

    def racer(i):
        barrier.wait()
        try:
            clients[i].put_object(Bucket=BUCKET, Key=key, Body=f"writer-{i}".encode(), IfNoneMatch="*")
            outcome[i] = 200
        except ClientError as e:
            outcome[i] = err(e)[0]
        except Exception as e:  # connection errors etc.
            outcome[i] = type(e).__name__

    ts = [threading.Thread(target=racer, args=(i,)) for i in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    winners = [i for i, o in enumerate(outcome) if o == 200]
    other |= {o for o in outcome if o not in (200, 412)}
    stored = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    if not (len(winners) == 1 and outcome.count(412) == THREADS - 1 and stored == f"writer-{winners[0]}".encode()):
        bad_rounds.append((rnd, outcome))
check("g1", f"{THREADS} racing create-only PUTs: exactly one wins, rest 412 ({ROUNDS} rounds)", not bad_rounds,
      f"{ROUNDS - len(bad_rounds)}/{ROUNDS} rounds clean" + (f"; other outcomes {other}; first bad {bad_rounds[0]}" if bad_rounds else ""))

# h. Delete missing key
r = s3.delete_object(Bucket=BUCKET, Key=PREFIX + "never-existed")
st = r["ResponseMetadata"]["HTTPStatusCode"]
check("h1", "DeleteObject of missing key -> 204", st == 204, f"status {st}")

# i. ETag = quoted MD5 of body (single-part)
body = os.urandom(12345)
_, etag = put("i", body)
md5 = hashlib.md5(body).hexdigest()
check("i1", "PUT ETag == '\"<md5 hex>\"'", etag == f'"{md5}"', f"{etag}")
h = s3.head_object(Bucket=BUCKET, Key=PREFIX + "i")
check("i2", "HEAD ETag matches, has Last-Modified and Content-Length",
      h["ETag"] == etag and h["ContentLength"] == len(body) and h.get("LastModified") is not None,
      f"ETag {h['ETag']}, Content-Length {h['ContentLength']}, Last-Modified {h['ResponseMetadata']['HTTPHeaders'].get('last-modified')!r}")

# Extras object_store uses: conditional GET (GetOptions::if_match / if_none_match).
try:
    s3.get_object(Bucket=BUCKET, Key=PREFIX + "i", IfMatch='"0000"')
    check("x1", "GET If-Match=<wrong> -> 412", False, "got 2xx")
except ClientError as e:
    check("x1", "GET If-Match=<wrong> -> 412", err(e)[0] == 412, f"{err(e)}")
try:
    s3.get_object(Bucket=BUCKET, Key=PREFIX + "i", IfNoneMatch=etag)
    check("x2", "GET If-None-Match=<current> -> 304", False, "got 2xx")
except ClientError as e:
    check("x2", "GET If-None-Match=<current> -> 304", err(e)[0] == 304, f"{err(e)}")

# object_store's delete_stream uses DeleteObjects (POST ?delete), in batches.
put("x3-1", b"1")
put("x3-2", b"2")
r = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": PREFIX + k} for k in ("x3-1", "x3-2", "x3-missing")]})
deleted = sorted(d["Key"][len(PREFIX):] for d in r.get("Deleted", []))
left = s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "x3-").get("KeyCount")
check("x3", "DeleteObjects deletes existing keys, missing key reported Deleted", deleted == ["x3-1", "x3-2", "x3-missing"] and left == 0 and not r.get("Errors"),
      f"Deleted {deleted}, Errors {r.get('Errors', [])}, {left} left")

passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)
