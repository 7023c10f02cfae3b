# The front door. `make run` and `make test` install what is missing (Debian
# packages, with apt-get, when run as root), build, and run the demo daemon or
# the whole test suite. Everything else is CMake.

BUILD      ?= build
TEST_BUILD ?= build-test
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# Tests at once: one more than the cores, since most black-box tests wait on
# a daemon, its jobs and its files far more than they compute (the load test
# and the array of 10,000 tasks take two slots each: tests/CMakeLists.txt).
TEST_JOBS  ?= $(shell echo $$(( $(JOBS) + 1 )))

# Debian 12 packages the build and the tests need.
PACKAGES := cmake g++ make pkg-config libuv1-dev nlohmann-json3-dev libsimdjson-dev \
            libtomlplusplus-dev libspdlog-dev doctest-dev python3 python3-jsonschema \
            clang libclang-rt-14-dev libssl-dev media-types systemd \
            libcpp-httplib-dev prometheus prometheus-node-exporter chromium

# CI builds with -Werror; a developer's build only warns.
ifeq ($(CI),true)
WERROR := -DSPOOLD_WERROR=ON
endif

.PHONY: all deps browser-deps build run test screenshots fuzz install package clean

all: build

deps:
	@missing=""; \
	for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "missing Debian packages:$$missing"; \
	    echo "install them with: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Installing (cmake --install, cpack) does not build everything first: the
# targets that `make build` built are what is installed or packaged.
CONFIGURE_BUILD = cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON $(WERROR)

build: deps
	$(CONFIGURE_BUILD)
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@mkdir -p var/spool
	@echo
	@echo "spoold is starting in the foreground on ./var/spool (Ctrl-C stops it)."
	@echo "Drop a job from another terminal:"
	@printf '%s\n' "  printf 'command = [\"sh\", \"-c\", \"echo hello; date > now.txt\"]\\n' > var/spool/tmp/hello.toml"
	@echo "  mv var/spool/tmp/hello.toml var/spool/incoming/"
	@echo "then read var/spool/jobs/hello/status.json, attempts/1/stdout.log and results.json,"
	@echo "or watch it in a browser: ./$(BUILD)/spoolctl --config config/demo.toml serve  (http://127.0.0.1:8642/)"
	@echo
	exec ./$(BUILD)/spoold --config config/demo.toml

# The test build runs every test under AddressSanitizer and UBSan, with
# failpoints compiled in (the crash tests kill the daemon at each of them). The
# load test (20,000 jobs) runs the optimized $(BUILD)/spoold instead: under ASan
# spoold is far too slow for it, and the systemd box test installs the .deb of
# $(BUILD). (Only the installed programs are built there: the suite's binaries
# are the test build's.) The Slurm cluster and the systemd box are stopped at
# the end whatever happened.
test: deps
	@$(MAKE) --no-print-directory browser-deps
	$(CONFIGURE_BUILD)
	cmake --build $(BUILD) -j $(JOBS) --target spoold spoold-exec spoolctl
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSPOOLD_SANITIZE=ON -DSPOOLD_FAILPOINTS=ON \
	  -DSPOOLD_LOAD_BIN=$(abspath $(BUILD))/spoold $(WERROR)
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cmake -S tests/fuzz -B $(FUZZ_BUILD) -DCMAKE_CXX_COMPILER=clang++ -DSPOOLD_FUZZ_SECONDS=15
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	cd $(FUZZ_BUILD) && ctest -j $(JOBS) --output-on-failure
	tests/slurm/live-cluster.sh start
	cd $(TEST_BUILD) && ctest -j $(TEST_JOBS) --output-on-failure --timeout 300; \
	  rc=$$?; $(CURDIR)/tests/slurm/live-cluster.sh stop >/dev/null 2>&1; \
	  $(CURDIR)/tests/systemd-box/stop-box.sh >/dev/null 2>&1; exit $$rc

# The browser test (tests/blackbox/test_browser.py) drives Debian's chromium
# (in PACKAGES) with playwright-core from npm, pinned by
# tests/browser/package-lock.json into tests/browser/node_modules (never a
# downloaded browser). node and npm are looked for as commands, not as Debian
# packages: they may come from elsewhere (nodesource). Missing, root installs
# Debian's nodejs and npm; anyone else is told, and the browser test skips.
browser-deps:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "node or npm missing: the browser test will skip (install them with: sudo apt-get install nodejs npm)"; \
	  else \
	    echo "installing: nodejs npm"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; \
	  fi; \
	fi
	@if command -v npm >/dev/null 2>&1; then \
	  echo "npm ci in tests/browser (playwright-core)"; \
	  (cd tests/browser && npm ci --no-audit --no-fund --prefer-offline --loglevel=error) || \
	    echo "!!! npm ci failed in tests/browser: the browser test cannot run (as root it fails) !!!"; \
	fi

# The README's screenshots, docs/img/jobs.png and docs/img/job.png (1280x800),
# taken by two of the browser test's scenarios on a spool of their own.
screenshots: deps
	@$(MAKE) --no-print-directory browser-deps
	$(CONFIGURE_BUILD)
	cmake --build $(BUILD) -j $(JOBS) --target spoold spoold-exec spoolctl
	cd tests/blackbox && SPOOLD_SCREENSHOTS=$(CURDIR)/docs/img \
	  SPOOLD_BIN=$(abspath $(BUILD))/spoold SPOOLD_EXEC_BIN=$(abspath $(BUILD))/spoold-exec \
	  SPOOLCTL_BIN=$(abspath $(BUILD))/spoolctl SPOOLD_BUILD_DIR=$(abspath $(BUILD)) \
	  SPOOLD_SOURCE_DIR=$(CURDIR) PYTHONDONTWRITEBYTECODE=1 \
	  python3 -m unittest -v test_browser.BrowserTest.test_filters_hide_rows \
	    test_browser.BrowserTest.test_result_downloads_with_its_checksum

# The fuzz targets alone, each for SECONDS (tests/fuzz/README.md); `make test`
# runs them for 30 seconds each (the suite's whole budget is 30 minutes).
FUZZ_BUILD ?= build-fuzz
SECONDS    ?= 600
fuzz: deps
	cmake -S tests/fuzz -B $(FUZZ_BUILD) -DCMAKE_CXX_COMPILER=clang++ -DSPOOLD_FUZZ_SECONDS=$(SECONDS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	cd $(FUZZ_BUILD) && ctest -j $(JOBS) --output-on-failure

# Binaries, the systemd unit, tmpfiles.d, sysusers.d, an example
# /etc/spoold/spoold.toml and bash completion (PREFIX defaults to /usr/local).
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# A Debian package in $(BUILD)/ (its maintainer scripts create the user and the
# spool folders).
package: build
	cd $(BUILD) && cpack -G DEB

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD)

# The benchmark (bench/README.md): spoold beside Task Spooler, nq and GNU parallel,
# one table. Builds a Release spoold in build-bench/. The peers are installed when
# run as root; otherwise a missing one is named and shown as "not installed".
BENCH_BUILD ?= build-bench
BENCH_PEER_PACKAGES := task-spooler nq parallel

.PHONY: bench
bench: deps
	@missing=""; \
	for p in $(BENCH_PEER_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -eq 0 ]; then \
	    echo "installing benchmark peers:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "benchmark peers not installed:$$missing (sudo apt-get install$$missing); they are left out"; \
	  fi; \
	fi
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target spoold spoolctl
	SPOOLD=$(BENCH_BUILD)/spoold python3 bench/spoold_bench.py

# What 10,000 jobs waiting for a parent (`after`) cost the starts of 2,000 others,
# and how fast the parent's failure cancels them all (bench/deps.py;
# BENCH_DEPS_N, BENCH_DEPS_W, BENCH_DEPS_ROUNDS).
.PHONY: bench-deps
bench-deps: deps
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target spoold spoold-exec
	SPOOLD=$(BENCH_BUILD)/spoold python3 bench/deps.py

# What a job array of 100,000 tasks costs: intake time, files and bytes written,
# index.json's growth, the daemon's RSS held and running 8 at a time, and a
# cancel (bench/arrays.py; BENCH_ARRAYS_N, BENCH_ARRAYS_PARALLEL,
# BENCH_ARRAYS_RUN_S, BENCH_ARRAYS_ROUNDS).
.PHONY: bench-arrays
bench-arrays: deps
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target spoold spoold-exec
	SPOOLD=$(BENCH_BUILD)/spoold python3 bench/arrays.py

# How long a restarted spoold takes to re-adopt 1,000 running attempts, and to
# stop them with a shutdown (bench/adopt.py; BENCH_ADOPT_N, BENCH_ADOPT_ROUNDS).
.PHONY: bench-adopt
bench-adopt: deps
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target spoold spoold-exec
	SPOOLD=$(BENCH_BUILD)/spoold python3 bench/adopt.py
