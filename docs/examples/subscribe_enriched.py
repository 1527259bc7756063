"""Read aivis.usage.enriched.v1 as a subscriber does and total the cost per team.

    pip install confluent-kafka
    python3 subscribe_enriched.py --brokers kafka-0:9092 --group finance-costs --from-beginning

Each record's value is one enriched event (docs/topics.md): JSON, or, when
enrich runs with enrich.output_format: protobuf, the message
aivis.usage.v1.Enriched of schemas/enriched_v1.proto, which the record's
header content-type: application/x-protobuf says. For those, generate the
module once with protoc and keep it beside this script:

    pip install protobuf grpcio-tools
    python3 -m grpc_tools.protoc -I schemas --python_out docs/examples schemas/enriched_v1.proto

Delivery is at least once: the same event can arrive twice, always with the same
event_id and key, so count each event_id once. cost_picos is an exact
integer of pico-USD: shift it 12 places for dollars, never through a
float. confluent-kafka decodes every codec aivis may write
(kafka.compression).
"""

import argparse
import json
import sys
from decimal import Decimal

from confluent_kafka import Consumer

TOPIC = "aivis.usage.enriched.v1"
PROTOBUF = "application/x-protobuf"


def is_protobuf(msg) -> bool:
    """The record's content-type header names the protobuf form."""
    for key, value in msg.headers() or []:
        if key.lower() == "content-type":
            return value is not None and value.decode().lower().startswith(PROTOBUF)
    return False


def from_protobuf(value: bytes) -> dict:
    """The members this subscriber uses, from an aivis.usage.v1.Enriched."""
    try:
        import enriched_v1_pb2
    except ImportError:
        sys.exit("a record is protobuf (enrich.output_format: protobuf); generate enriched_v1_pb2 "
                 "as this script's docstring shows")
    m = enriched_v1_pb2.Enriched.FromString(value)
    return {"event_id": m.event_id, "owner": {"team": m.owner.team}, "model": m.model,
            "cost_picos": m.cost_picos, "cost_source": m.cost_source}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True, help="bootstrap servers, host:port[,host:port]")
    ap.add_argument("--group", required=True, help="your consumer group")
    ap.add_argument("--from-beginning", action="store_true", help="start a new group at the oldest record")
    ap.add_argument("--idle-seconds", type=float, default=0, help="stop after this long without a record (0: run until interrupted)")
    ap.add_argument("--events", action="store_true", help="also print each event counted, as a JSON line")
    args = ap.parse_args()

    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": args.group,
        "auto.offset.reset": "earliest" if args.from_beginning else "latest",
    })
    consumer.subscribe([TOPIC])
    # A long-running subscriber keeps ids as long as a producer may resend
    # (aivis's own dedup horizon is 24 h), or writes keyed by event_id so
    # that a repeat overwrites instead of adding.
    seen = set()
    picos_by_team = {}
    idle = 0.0
    try:
        while not args.idle_seconds or idle < args.idle_seconds:
            msg = consumer.poll(0.5)
            if msg is None:
                idle += 0.5
                continue
            idle = 0.0
            if msg.error():
                print(f"reading {TOPIC}: {msg.error()}", file=sys.stderr)
                return 1
            event = from_protobuf(msg.value()) if is_protobuf(msg) else json.loads(msg.value())
            if event["event_id"] in seen:
                continue
            seen.add(event["event_id"])
            team = event["owner"]["team"]
            picos_by_team[team] = picos_by_team.get(team, 0) + event["cost_picos"]
            if args.events:
                print(json.dumps({"event_id": event["event_id"], "team": team, "model": event["model"],
                                  "cost_picos": event["cost_picos"], "cost_source": event["cost_source"]}))
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    for team, picos in sorted(picos_by_team.items()):
        print(f"{team}\t{Decimal(picos).scaleb(-12):f} USD")
    return 0


if __name__ == "__main__":
    sys.exit(main())
