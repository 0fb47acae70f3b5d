#!/usr/bin/env python3
"""An idempotent confluent-kafka producer that keeps going while its listener is killed.

    kafka_fault.py --bootstrap HOST:PORT --topic T --count N

Produces N records (key k{i % 13}, value fault-{i:06}) with acks=all and idempotence, about
one per millisecond so the test can kill the listener mid-produce and start another on the
same address and store. Retries go on until every record is delivered or fails. Prints one
JSON object on stdout: {"acked": [[i, partition, offset], ...], "failed": [[i, error], ...]},
and exits 0 only when every record was acknowledged.
"""

import argparse
import json
import sys
import time

from confluent_kafka import Producer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    args = ap.parse_args()
    acked, failed = [], []

    def report(i):
        def on_delivery(err, msg):
            if err:
                failed.append([i, str(err)])
            else:
                acked.append([i, msg.partition(), msg.offset()])
        return on_delivery

    p = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 120000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
        }
    )
    for i in range(args.count):
        p.produce(args.topic, key=f"k{i % 13}".encode(), value=f"fault-{i:06}".encode(),
                  on_delivery=report(i))
        p.poll(0)
        if i % 10 == 9:
            time.sleep(0.01)
    left = p.flush(150)
    print(json.dumps({"acked": acked, "failed": failed, "undelivered": left}))
    return 0 if len(acked) == args.count and not failed and left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
