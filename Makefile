# aivis — make targets. `make demo` and `make test` install what is missing.
SHELL := /bin/bash
GO ?= go
export CGO_CFLAGS ?= -Wno-deprecated-declarations
BIN := bin/aivis
PKGS := ./...
FUZZTIME ?= 10s
BENCHTIME ?= 200ms
BENCH_EVENTS ?= 1000000

.PHONY: help build pgo gpu-check demo serve test test-cluster deploy-test codecs-test unit fuzz bench capacity lint clickhouse-up clickhouse-down kafka-up kafka-down cluster-up cluster-down chdb-up pykafka-up prometheus-up chromium-up clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build bin/aivis (lazy binding: the binary must start on hosts without the NVIDIA driver)
	$(GO) build -ldflags=-extldflags=-Wl,-z,lazy -o $(BIN) ./cmd/aivis

pgo: clickhouse-up ## profile a build without PGO through e2e and ingest (benchmarks/compare, about a minute) and write the merged CPU profiles to cmd/aivis/default.pgo, which go build applies to bin/aivis
	$(GO) build -pgo=off -o .aivis/pgo/aivis ./cmd/aivis
	$(GO) run ./benchmarks/compare -skip micro,raw,peer,naive,e2e-protobuf,latency,rss,scaling -bin .aivis/pgo/aivis -out .aivis/pgo/latest.json
	$(GO) tool pprof -proto .aivis/pgo/enrich.cpu.pprof .aivis/pgo/aggregate-0.cpu.pprof .aivis/pgo/ingest-500x8.cpu.pprof > cmd/aivis/default.pgo.tmp
	mv cmd/aivis/default.pgo.tmp cmd/aivis/default.pgo

gpu-check: build ## on a GPU host: run gpuprobe for a minute, print gpu.usage events and a per-GPU summary (docs/gpu.md)
	deploy/scripts/gpu-check.sh

demo: build ## run the whole pipeline for a minute on synthetic traffic and print the cost report
	deploy/scripts/demo.sh

serve: build ## serve the web view of the demo data (after make demo) on http://127.0.0.1:8088/
	deploy/scripts/clickhouse.sh up
	$(BIN) serve --clickhouse.database $${AIVISDEV_DEMO_DB:-aivis_demo} --addr $${AIVISDEV_SERVE_ADDR:-127.0.0.1:8088} --log_level warn

test: build clickhouse-up kafka-up chdb-up pykafka-up prometheus-up chromium-up lint ## start the services and run every test (what CI runs)
	$(GO) test -count=1 -race -timeout 15m -skip '^(TestFault|TestCluster)' $(PKGS)
	@echo "detector tests on the demo's own traffic (skipped under -race)"
	$(GO) test -count=1 -timeout 10m -run '^TestDetector(QuietOnDefaultDemoTraffic|ColdStartOnDemoTraffic)$$' -v ./aggregate 2>&1 | grep -E '^(--- |PASS|FAIL|ok|panic)|incidents' ; exit $${PIPESTATUS[0]}
	@echo "fault tests (one at a time: they restart the shared broker)"
	$(GO) test -p 1 -count=1 -timeout 15m -run '^TestFault' -v ./cmd/aivis ./ingest/client ./internal/testenv 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go:' ; exit $${PIPESTATUS[0]}
	$(MAKE) test-cluster
	$(MAKE) deploy-test
	$(MAKE) codecs-test
	$(MAKE) fuzz

test-cluster: build ## start the local cluster (ZooKeeper, 2x2 ClickHouse, 3 Kafka brokers), run the cluster tests, stop it (docs/cluster.md)
	deploy/scripts/cluster.sh up
	$(GO) test -p 1 -count=1 -timeout 15m -run '^TestCluster' -v ./sinks/clickhouse ./cmd/aivis 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go:' ; rc=$${PIPESTATUS[0]}; deploy/scripts/cluster.sh down; exit $$rc

deploy-test: build ## test deploy/ (Helm chart, docker-compose.yml, Dockerfile) in its own Go module, which holds the Helm and Kubernetes dependencies
	cd deploy/test && $(GO) vet ./... && AIVISDEV_AIVIS_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 ./...
	@cd deploy/test && cp go.mod /tmp/aivis.deploy.go.mod.bak && cp go.sum /tmp/aivis.deploy.go.sum.bak && $(GO) mod tidy && \
	 if ! git diff --quiet go.mod go.sum; then echo "go mod tidy changes deploy/test/go.mod or go.sum: commit them"; exit 1; fi

codecs-test: ## test benchmarks/codecs (the JSON codecs compared with aivis's) in its own Go module, with and without GOEXPERIMENT=jsonv2
	cd benchmarks/codecs && $(GO) vet ./... && $(GO) test -count=1 ./... && GOEXPERIMENT=jsonv2 $(GO) vet ./... && GOEXPERIMENT=jsonv2 $(GO) test -count=1 ./...
	@cd benchmarks/codecs && cp go.mod /tmp/aivis.codecs.go.mod.bak && cp go.sum /tmp/aivis.codecs.go.sum.bak && $(GO) mod tidy && \
	 if ! git diff --quiet go.mod go.sum; then echo "go mod tidy changes benchmarks/codecs/go.mod or go.sum: commit them"; exit 1; fi
unit: ## run the tests that need no services
	$(GO) test -count=1 -short $(PKGS)

fuzz: ## run every fuzz target for FUZZTIME each (deploy/scripts/fuzz.sh)
	GO=$(GO) FUZZTIME=$(FUZZTIME) deploy/scripts/fuzz.sh

bench: build ## micro-benchmarks briefly, then aivis against ClickHouse's Kafka engine and a naive consumer (benchmarks/README.md; at most about 20 minutes)
	$(GO) test -count=1 -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 4m ./schemas/... ./ingest/... ./enrich/... ./aggregate/... ./sinks/... ./internal/bus/...
	cd benchmarks/codecs && $(GO) test -count=1 -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) . && GOEXPERIMENT=jsonv2 $(GO) test -count=1 -run '^$$' -bench '/json-v2' -benchmem -benchtime $(BENCHTIME) .
	$(GO) run ./benchmarks/compare -events $(BENCH_EVENTS) -timeout 16m -out benchmarks/results/latest.json

capacity: build clickhouse-up ## measure bytes per stored event, window row and Kafka record (about 30 s), then print the sizing table of docs/capacity.md
	bin/aivis capacity measure --events 200000 --span 1h
	bin/aivis capacity plan --events-per-second 1000,10000,100000 --retention-days 30

lint: ## gofmt, go vet, go mod tidy check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@cp go.mod /tmp/aivis.go.mod.bak; cp go.sum /tmp/aivis.go.sum.bak; $(GO) mod tidy; \
	 if ! git diff --quiet go.mod go.sum; then echo "go mod tidy changes go.mod/go.sum: commit them"; git --no-pager diff --stat go.mod go.sum; exit 1; fi

clickhouse-up: ## start (installing if needed) a private ClickHouse on 127.0.0.1:9000 (TLS on 9440)
	deploy/scripts/clickhouse.sh up

clickhouse-down: ## stop the ClickHouse started by clickhouse-up
	deploy/scripts/clickhouse.sh down

kafka-up: ## start (fetching the jars from Maven Central once) a private Kafka 4.4 broker on 127.0.0.1:19092 (SASL_SSL on 19094)
	deploy/scripts/kafka.sh up

kafka-down: ## stop the Kafka broker started by kafka-up (data kept)
	deploy/scripts/kafka.sh down

chromium-up: ## install (once) Debian's chromium, which the web-view test drives headless
	deploy/scripts/chromium.sh up

cluster-up: ## start (installing what is missing) the local cluster: ZooKeeper, 2x2 ClickHouse on 41000-41003, Kafka on 41092/41094/41096
	deploy/scripts/cluster.sh up

cluster-down: ## stop the local cluster (data kept; deploy/scripts/cluster.sh down --wipe deletes it)
	deploy/scripts/cluster.sh down

chdb-up: ## install (once) chDB, current ClickHouse in Python, into .aivis/chdb-venv for the modern-SQL test
	deploy/scripts/chdb.sh up

pykafka-up: ## install (once) confluent-kafka into .aivis/pykafka-venv, for the test that runs docs/examples/subscribe_enriched.py
	deploy/scripts/pykafka.sh up

prometheus-up: ## install (once) Debian's prometheus package, whose promtool and server the alert-rule tests run
	deploy/scripts/prometheus.sh up

clean: ## remove build output (not the ClickHouse data)
	rm -rf bin
