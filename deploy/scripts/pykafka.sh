#!/usr/bin/env bash
# Installs confluent-kafka (Python's librdkafka client, with every Kafka
# codec built in), protobuf and grpcio-tools (protoc, for the enriched
# topic's protobuf form) into a private venv, so that the tests can read
# aivis's topics as a Python subscriber does
# (docs/examples/subscribe_enriched.py).
# Installs python3-venv with apt when venv is missing.
# Idempotent: returns at once when the pinned version is already there.
#   deploy/scripts/pykafka.sh up|status|python
# Environment: AIVISDEV_PYKAFKA_VENV (default <repo>/.aivis/pykafka-venv).
# Under CI=true a failed install fails; locally it warns and the Python
# subscriber test skips with a message that names this script.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
name=pykafka
venv=${AIVISDEV_PYKAFKA_VENV:-$root/.aivis/pykafka-venv}
pin="confluent-kafka==2.16.1 protobuf==6.33.6 grpcio-tools==1.78.0"
module="confluent_kafka, google.protobuf, grpc_tools"
size="about 35 MB"
skips="the Python subscriber test"
. "$(dirname "$0")/pyvenv.sh"
pyvenv_main "$@"
