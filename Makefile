# followupd — build and test.
GO      ?= go
PKGS    := ./...
FUZZTIME ?= 10s
# Minimising every new input stalls short runs; a crasher is still kept whole.
FUZZMIN  ?= 5s

.PHONY: build test ci fmt-check vet fuzz-short install

build:
	$(GO) build -o bin/followupd ./cmd/followupd

install:
	$(GO) install ./cmd/followupd

test:
	./.ci/gotest

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# The full test command (README): formatting, vet, the race-enabled suite on
# SQLite and — when FOLLOWUPD_TEST_POSTGRES is set — Postgres, then short fuzz runs.
ci: fmt-check vet
	./.ci/gotest
	$(MAKE) fuzz-short

fuzz-short:
	@set -e; grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do \
	  dir=$$(dirname $$f); \
	  for fz in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/^func //'); do \
	    echo "fuzz $$dir $$fz ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$fz$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMIN) $$dir || exit 1; \
	  done; \
	done
