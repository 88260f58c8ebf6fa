# The two commands a newcomer needs: `make run` (the main job) and `make test`.
# Both install the Debian packages they need first (idempotent) and build.

DEBIAN_PACKAGES := libopenblas-dev libzmq3-dev zlib1g-dev libsqlite3-dev pkg-config dataset-fashion-mnist \
	iproute2 openssh-client libdnnl2
SWIFT_BUILD := swift build -c release
WORKER := .build/release/worker
COORDINATOR := .build/release/coordinator

.PHONY: deps build run test bench bundle

deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT_BUILD)

# The main job: the SynFlow iteration sweep on the quick preset, on the workers of
# cluster.json; it ends with the report's path. Rerunning it resumes.
run: build
	$(COORDINATOR) --sweep synflow-iters --cluster cluster.json

# Tests run optimised (numeric code is 20-100x slower in debug) with one BLAS thread each,
# since Swift Testing runs suites in parallel on the 2 cores.
test: deps
	OPENBLAS_NUM_THREADS=1 swift test -c release

bench: build
	$(WORKER) bench

# A worker + coordinator bundle for hosts without Swift or our packages (docs/gpu.md):
# dist/prunesweep-worker-COMMIT.tar.xz.
bundle: deps
	scripts/bundle.sh dist
