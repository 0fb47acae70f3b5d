#!/usr/bin/env python3
"""Consumer groups of Kafka clients no one here wrote, through `pail kafka` listeners.

    kafka_groups.py --bootstrap HOST:PORT,HOST:PORT --store DIR --pail PAIL

For confluent-kafka (librdkafka) and kafka-python in turn, on a topic of 4 partitions:

  * two members of one group, each on a different listener of the one store, split the
    partitions (disjoint assignments covering all 4), together read every record exactly once
    (each from a partition it was assigned), commit and close;
  * a restarted group resumes from the committed offsets (reads only what came after);
  * `pail group describe` shows the committed offsets at the end of every partition;
  * an assign()ed consumer (no group membership) commits and fetches its offsets ("simple"
    commits);

then DeleteTopics through confluent's AdminClient removes a topic for `pail topic list`.

Exit 0 with one summary line on stdout; exit 1 with one line on stderr naming the first
mismatch.
"""

import argparse
import json
import subprocess
import sys
import threading
import time

PARTITIONS = 4
RECORDS = 200
MORE = 40
TIMEOUT_S = 90
SESSION = {"session_ms": 6000, "heartbeat_ms": 1000}


class Mismatch(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Mismatch(message)


def admin(bootstrap):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap, topic):
    from confluent_kafka.admin import NewTopic

    a = admin(bootstrap)  # kept alive until its answer is in
    a.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(TIMEOUT_S)


def produce(bootstrap, topic, start, count):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(start, start + count):
        p.produce(topic, value=f"r{i}".encode(), partition=i % PARTITIONS)
    check(p.flush(TIMEOUT_S) == 0, f"{topic}: records left unacknowledged")


class Member:
    """A consumer in its own thread: records what it was assigned and what it read."""

    def __init__(self, client, bootstrap, group, topic):
        self.client, self.bootstrap, self.group, self.topic = client, bootstrap, group, topic
        self.assigned = set()
        self.read = []  # (partition, offset, value)
        self.error = None
        self.stop = threading.Event()
        # Commit, then wait for `close`: every member commits before any leaves, since a
        # leave starts a rebalance that revokes the others' partitions (and their offsets).
        self.committed = threading.Event()
        self.close = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            if self.client == "confluent":
                self.run_confluent()
            else:
                self.run_kafka_python()
        except Exception as e:  # reported by the main thread
            self.error = e

    def run_confluent(self):
        from confluent_kafka import Consumer

        c = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": SESSION["session_ms"],
                "heartbeat.interval.ms": SESSION["heartbeat_ms"],
            }
        )
        c.subscribe([self.topic])
        while not self.stop.is_set():
            m = c.poll(0.2)
            self.assigned = {tp.partition for tp in c.assignment()}
            if m is None or m.error():
                continue
            self.read.append((m.partition(), m.offset(), m.value().decode()))
        c.commit(asynchronous=False)
        self.committed.set()
        self.close.wait(TIMEOUT_S)
        c.close()

    def run_kafka_python(self):
        from kafka import KafkaConsumer

        c = KafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=SESSION["session_ms"],
            heartbeat_interval_ms=SESSION["heartbeat_ms"],
        )
        while not self.stop.is_set():
            # Not shorter: kafka-python 3.0.12 can block forever in ensure_coordinator_ready
            # when poll() returns early while its JoinGroup is still waiting for the round
            # (seen under load with faulthandler: the listener had answered every request, and
            # the client never sent another). A round lasts up to a heartbeat interval.
            batches = c.poll(timeout_ms=2000)
            self.assigned = {tp.partition for tp in c.assignment()}
            for tp, msgs in batches.items():
                for m in msgs:
                    self.read.append((tp.partition, m.offset, m.value.decode()))
        c.commit()
        self.committed.set()
        self.close.wait(TIMEOUT_S)
        c.close()


def finish(members):
    """Every member commits, then all close."""
    for m in members:
        m.stop.set()
    for m in members:
        wait_until(f"{m.client} member's commit", lambda: m.committed.is_set() or m.error, (m,))
    for m in members:
        m.close.set()
        m.thread.join(TIMEOUT_S)
        check(not m.thread.is_alive(), f"{m.client} member did not stop")


def wait_until(what, cond, members=()):
    deadline = time.monotonic() + TIMEOUT_S
    while not cond():
        for m in members:
            if m.error:
                raise Mismatch(f"{m.client} member failed while waiting for {what}: {m.error!r}")
        check(time.monotonic() < deadline, f"timed out waiting for {what}")
        time.sleep(0.1)


def describe(pail, store, group):
    out = subprocess.run(
        [pail, "--store", store, "group", "describe", group, "--format", "json"],
        capture_output=True,
        timeout=TIMEOUT_S,
    )
    check(out.returncode == 0, f"pail group describe {group}: {out.stderr.decode()}")
    return json.loads(out.stdout)


def two_members(client, listeners, pail, store):
    topic, group = f"grp-{client}", f"g-{client}"
    create_topic(listeners[0], topic)
    a = Member(client, listeners[0], group, topic)
    b = Member(client, listeners[1], group, topic)
    split = lambda: (
        len(a.assigned) == 2 and len(b.assigned) == 2 and not a.assigned & b.assigned
    )
    wait_until(f"{client}: two members splitting {PARTITIONS} partitions", split, (a, b))
    produce(listeners[0], topic, 0, RECORDS)
    total = lambda: len(a.read) + len(b.read)
    wait_until(f"{client}: {RECORDS} records read", lambda: total() >= RECORDS, (a, b))
    time.sleep(0.5)  # anything read twice would show up now
    finish((a, b))
    for m in (a, b):
        check(
            {p for p, _, _ in m.read} <= m.assigned,
            f"{client}: a member read partitions {sorted({p for p, _, _ in m.read})} "
            f"outside its assignment {sorted(m.assigned)}",
        )
    values = sorted(v for m in (a, b) for _, _, v in m.read)
    check(
        values == sorted(f"r{i}" for i in range(RECORDS)),
        f"{client}: the members read {len(values)} records, not each of {RECORDS} once",
    )
    d = describe(pail, store, group)
    committed = {(p["partition"]): (p.get("committed"), p["end_offset"]) for p in d["partitions"]}
    check(
        sorted(committed) == list(range(PARTITIONS))
        and all(c == end for c, end in committed.values()),
        f"{client}: pail group describe shows {committed}, not every partition committed at its end",
    )
    # A restarted group resumes from the committed offsets.
    produce(listeners[1], topic, RECORDS, MORE)
    c = Member(client, listeners[1], group, topic)
    wait_until(f"{client}: restarted member reads {MORE} new records", lambda: len(c.read) >= MORE, (c,))
    time.sleep(0.5)
    finish((c,))
    values = sorted(v for _, _, v in c.read)
    check(
        values == sorted(f"r{i}" for i in range(RECORDS, RECORDS + MORE)),
        f"{client}: the restarted group read {len(values)} records, not only the {MORE} new ones",
    )


def simple_commits(client, bootstrap, topic):
    """An assign()ed consumer commits and reads back its offsets."""
    group = f"simple-{client}"
    if client == "confluent":
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        tps = [TopicPartition(topic, p, 3 + p) for p in range(PARTITIONS)]
        c.commit(offsets=tps, asynchronous=False)
        got = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=TIMEOUT_S)
        offsets = [tp.offset for tp in got]
        c.close()
    else:
        from kafka import KafkaConsumer, TopicPartition
        from kafka.structs import OffsetAndMetadata

        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        c.assign(tps)
        c.commit({tp: OffsetAndMetadata(3 + tp.partition, "", -1) for tp in tps})
        offsets = [c.committed(tp) for tp in tps]
        c.close()
    check(offsets == [3 + p for p in range(PARTITIONS)], f"{client}: simple commits read back {offsets}")


def delete_topic(bootstrap, pail, store):
    topic = "to-delete"
    create_topic(bootstrap, topic)
    a = admin(bootstrap)
    a.delete_topics([topic])[topic].result(TIMEOUT_S)
    out = subprocess.run([pail, "--store", store, "topic", "list"], capture_output=True, timeout=TIMEOUT_S)
    check(topic not in out.stdout.decode().split(), f"{topic} still listed after DeleteTopics")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True, help="two listeners: HOST:PORT,HOST:PORT")
    ap.add_argument("--store", required=True)
    ap.add_argument("--pail", required=True)
    ap.add_argument("--clients", default="confluent,kafka-python")
    args = ap.parse_args()
    listeners = args.bootstrap.split(",")
    try:
        clients = args.clients.split(",")
        for client in clients:
            two_members(client, listeners, args.pail, args.store)
            simple_commits(client, listeners[1], f"grp-{client}")
        delete_topic(listeners[0], args.pail, args.store)
    except Mismatch as e:
        print(f"kafka_groups: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"kafka_groups: OK ({', '.join(clients)}: two-member groups split {PARTITIONS} partitions)")


if __name__ == "__main__":
    main()
