#!/usr/bin/env python3
"""A subscriber to one tenant's Yiwaiwai conversation events, written from docs/asyncapi.yaml.

For every partition p of the conversation log it creates (or binds to) a durable pull consumer
on stream YY_CONV_<p> filtered to yy.evt.conv.<p>.<tenant>.>, decodes each message as a
yy.eventlog.v1.Commit (Python classes generated from proto/ with grpcio-tools at start-up),
prints one JSON line per event to standard output, and acknowledges the message once its events
are printed. Restarted with the same --durable, it resumes after the last acknowledged message.

    python3 subscriber.py --nats-url nats://127.0.0.1:4222 --tenant ten_… --durable crm-sync

Each line: {"partition", "stream_sequence", "event_id", "tenant_id", "aggregate_id",
"occurred_at", "type", "data"}, where "type" is the payload's oneof case (such as
"message_posted") and "data" the payload as protobuf JSON; an event whose case this build of
the .proto files does not know is printed with "type": null and skipped by nothing else.
"""

import argparse
import asyncio
import importlib
import json
import pathlib
import sys
import tempfile
import time

import nats
from google.protobuf import json_format
from grpc_tools import protoc
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

ROOT = pathlib.Path(__file__).resolve().parents[2]


def generate(proto_dir: pathlib.Path, out_dir: pathlib.Path):
    """Generates the Python classes of every .proto file and returns the eventlog module."""
    # The google/protobuf/*.proto files ship inside grpc_tools.
    bundled = pathlib.Path(protoc.__file__).parent / "_proto"
    files = sorted(str(p.relative_to(proto_dir)) for p in proto_dir.rglob("*.proto"))
    code = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{bundled}", f"--python_out={out_dir}", *files]
    )
    if code != 0:
        sys.exit(f"protoc failed ({code}) on {proto_dir}")
    sys.path.insert(0, str(out_dir))
    return importlib.import_module("yy.eventlog.v1.eventlog_pb2")


def event_line(partition, sequence, envelope):
    case = envelope.WhichOneof("payload")
    data = None
    if case is not None:
        data = json_format.MessageToDict(
            getattr(envelope, case), preserving_proto_field_name=True
        )
    return json.dumps(
        {
            "partition": partition,
            "stream_sequence": sequence,
            "event_id": envelope.event_id,
            "tenant_id": envelope.tenant_id,
            "aggregate_id": envelope.aggregate_id,
            "occurred_at": envelope.occurred_at.ToJsonString(),
            "type": case,
            "data": data,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


async def bind(js, args, partition):
    stream = f"YY_{args.context.upper()}_{partition}"
    subject = f"yy.evt.{args.context}.{partition}.{args.tenant}.>"
    # Naming the consumer and giving one filter makes the client send
    # $JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>, which the subscriber's NATS permissions
    # pin to its tenant. Creating it again with the same settings binds to the existing one.
    config = ConsumerConfig(
        name=args.durable,
        durable_name=args.durable,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=30,
    )
    await js.add_consumer(stream, config)
    return await js.pull_subscribe_bind(durable=args.durable, stream=stream)


async def consume(sub, eventlog, partition, activity):
    while True:
        try:
            messages = await sub.fetch(batch=100, timeout=1)
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            # Nothing new within the second; the client reports it either way.
            continue
        for message in messages:
            commit = eventlog.Commit()
            commit.ParseFromString(message.data)
            for envelope in commit.events:
                print(event_line(partition, message.metadata.sequence.stream, envelope), flush=True)
            # Acknowledged once printed: a crash before this line prints the commit again on
            # restart (at least once); event_id tells the repeats apart.
            await message.ack_sync()
            activity[0] = time.monotonic()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nats-url", required=True, help="such as nats://user:password@host:4222")
    parser.add_argument("--tenant", required=True, help="the tenant id, ten_…")
    parser.add_argument("--durable", required=True, help="the consumer's name, the same in every partition")
    parser.add_argument("--partitions", type=int, default=8, help="the log's partition count (default 8)")
    parser.add_argument("--context", default="conv", choices=["conv", "routing"])
    parser.add_argument("--proto-dir", type=pathlib.Path, default=ROOT / "proto")
    parser.add_argument(
        "--inbox-prefix",
        default="_INBOX",
        help="the prefix of reply subjects; the subscriber user's permissions name it",
    )
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        default=0,
        help="stop after this many seconds without a message (default: run until interrupted)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="yy-subscriber-") as out_dir:
        eventlog = generate(args.proto_dir, pathlib.Path(out_dir))
        nc = await nats.connect(args.nats_url, inbox_prefix=args.inbox_prefix)
        js = nc.jetstream()
        # Every consumer exists before anything is read, so that a refused or failed set-up
        # stops the program instead of passing for an idle log.
        subs = [await bind(js, args, p) for p in range(args.partitions)]
        activity = [time.monotonic()]
        tasks = [
            asyncio.create_task(consume(sub, eventlog, p, activity))
            for p, sub in enumerate(subs)
        ]
        try:
            while True:
                done = [t for t in tasks if t.done()]
                for task in done:
                    task.result()  # a consumer that failed stops the program with its error
                idle = time.monotonic() - activity[0]
                if args.exit_when_idle and idle >= args.exit_when_idle:
                    break
                await asyncio.sleep(0.1)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # close, not drain: draining waits on the pull requests still open.
            await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
