# Two commands do all set-up on a fresh machine:
#   make serve   – creates .venv, builds the native modules, serves on 127.0.0.1:8096
#   make test    – same set-up, test tools where they can be installed, then the whole suite
#                  twice: with the Cython twins, and with REVENGE_NO_EXTENSIONS=1 (pure Python)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
NATIVE_SRC := $(wildcard revenge/_native/*.pyx)
PYTEST_ARGS ?=

.PHONY: client serve test test-native test-pure test-pure-all bench bench-hot bench-http bench-store bench-start bench-web bench-cluster load soak tools build annotate debug clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel "Cython>=3.0,<4"

$(STAMP): $(PY) pyproject.toml setup.py $(NATIVE_SRC)
	REVENGE_NO_EXTENSIONS=1 $(PIP) install --quiet --no-build-isolation -e ".[test]"
	$(PY) setup.py --quiet build_ext --inplace
	touch $(STAMP)

# the web client's browser libraries (hls.js) from npm, pinned by revenge/web/client/package-lock.json;
# best effort: any failure prints one line and the player falls back to the browser's own HLS
CLIENT := revenge/web/client
client:
	@cmp -s $(CLIENT)/package-lock.json $(CLIENT)/node_modules/.revenge-lock 2>/dev/null && exit 0; \
	if ! command -v npm >/dev/null && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null 2>&1 || \
		{ apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null 2>&1; }; \
	fi; \
	{ command -v npm >/dev/null && cd $(CLIENT) && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null 2>&1 && \
		cp package-lock.json node_modules/.revenge-lock; } || \
		echo "web client: hls.js is missing (npm ci failed or npm is not installed); the player uses the browser's own HLS"

build: $(STAMP) client

serve: $(STAMP) client
	$(VENV)/bin/revenge serve $(ARGS)

# Debian test tools (ffmpeg, promtool, chromium for the hls.js test, postgresql for the store suites, redis-server
# and nginx for the cluster harness); best effort: tests that need a missing tool skip and say so.
tools:
	@need=""; command -v ffmpeg >/dev/null || need="$$need ffmpeg"; \
	command -v promtool >/dev/null || need="$$need prometheus"; \
	command -v chromium >/dev/null || need="$$need chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$$need postgresql"; \
	command -v redis-server >/dev/null || need="$$need redis-server"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need="$$need nginx"; \
	if [ -n "$$need" ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing test tools:$$need"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$need >/dev/null 2>&1 || \
		{ apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$need >/dev/null 2>&1; } || \
		echo "could not install$$need; the tests that need them will skip"; \
	fi

test: $(STAMP) client tools test-native test-pure

test-native: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# the pure twins: every test of the native modules and the unit suites, and the end-to-end suites that
# drive the twins' hot paths (ranges, segment cache, rate limits, metrics) through a real server; the
# rest of the end-to-end suites exercise no native code and run once, in test-native (make test-pure-all
# runs everything pure)
PURE_TESTS ?= tests/native tests/unit tests/test_imports.py tests/test_nothing_unused.py \
	tests/e2e/test_server_basics.py tests/e2e/test_direct_play.py tests/e2e/test_hls.py tests/e2e/test_fuzz.py \
	tests/e2e/test_operations.py

test-pure: $(STAMP)
	REVENGE_NO_EXTENSIONS=1 $(PY) -m pytest -q --no-native $(PURE_TESTS) $(PYTEST_ARGS)

test-pure-all: $(STAMP)
	REVENGE_NO_EXTENSIONS=1 $(PY) -m pytest -q --no-native $(PYTEST_ARGS)

bench: $(STAMP) bench-hot bench-http bench-store bench-start bench-web

bench-hot: $(STAMP)
	$(PIP) install --quiet -e ".[test,bench]" --no-build-isolation
	mkdir -p .benchmarks
	cd benchmarks && ../$(PY) -m pytest -q -p no:cacheprovider --benchmark-json=../.benchmarks/last.json $(PYTEST_ARGS)
	$(PY) benchmarks/report.py .benchmarks/last.json

annotate: $(PY)
	REVENGE_ANNOTATE=1 $(PY) setup.py --quiet build_ext --inplace --force
	@echo "annotations: revenge/_native/*.html"

debug: $(PY)
	REVENGE_DEBUG_BUILD=1 REVENGE_CYTHON_TRACE=1 $(PY) setup.py --quiet build_ext --inplace --force

clean:
	rm -rf build revenge/_native/*.c revenge/_native/*.so revenge/_native/*.html $(VENV)

# end-to-end direct play vs nginx and Starlette (needs Debian's wrk and nginx)
bench-http: $(STAMP)
	$(PIP) install --quiet -e ".[test,bench]" --no-build-isolation
	@command -v wrk >/dev/null && command -v nginx >/dev/null || { [ "$$(id -u)" = 0 ] && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk nginx >/dev/null 2>&1; } || true
	$(PY) benchmarks/http/run_http.py

# store reads and job throughput on SQLite and on a throwaway PostgreSQL (Debian's postgresql, installed
# here where it can be; without it the PostgreSQL rows are skipped and say why), vs the bare drivers and pgqueuer
bench-store: $(STAMP)
	$(PIP) install --quiet -e ".[test,bench]" --no-build-isolation
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 || \
		{ apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1; }; }; } || true
	$(PY) benchmarks/store/run_store.py
	$(PY) benchmarks/store/run_jobs.py

# time to the first segment (cold start, resume, seek) vs bare ffmpeg; ffmpeg is the system one or
# the static binary of the imageio-ffmpeg dependency
bench-start: $(STAMP)
	$(PY) benchmarks/start/run_start.py

# issue 17: cached-segment throughput through nginx with 1 and 3 instances, and the added latency of a
# peer fetch, on a throwaway PostgreSQL + Redis + 3 nodes (needs Debian's postgresql, redis-server, nginx: make tools);
# the web client's pages on a 5 000-item library against web-client.md rule 24's budgets (needs ffmpeg);
# table printed, JSON in .benchmarks/web.json
bench-web: $(STAMP)
	$(PY) benchmarks/web/run_web.py $(ARGS)

# not part of make test or make bench; table printed, JSON in .benchmarks/cluster.json
bench-cluster: $(STAMP)
	$(PY) benchmarks/cluster/run_cluster.py $(ARGS)

# player-emulating load (loopback, bounded); soak: 10 minutes, RSS and fds must stay flat
load: $(STAMP)
	PY=$(PY) benchmarks/load/run_load.sh --viewers 20 --seconds 60

soak: $(STAMP)
	REVENGE_TEST_FULL=1 $(PY) -m pytest -q -p no:cacheprovider tests/e2e/test_fuzz.py tests/e2e/test_faults.py \
	  tests/e2e/test_remote_transcoder.py tests/native/test_twin_agreement.py tests/unit/test_dolby_vision.py \
	  tests/cluster/test_load.py
	PY=$(PY) benchmarks/load/run_load.sh --viewers 20 --seconds 600 --soak
