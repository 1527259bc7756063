"""Read aivis.usage.enriched.v1 as a subscriber does and total the cost per team.

    pip install confluent-kafka
    python3 subscribe_enriched.py --brokers kafka-0:9092 --group finance-costs --from-beginning

Each record's value is one enriched event in JSON (docs/topics.md). Delivery
is at least once: the same event can arrive twice, always with the same
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
            event = json.loads(msg.value())
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
