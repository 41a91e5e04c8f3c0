# followupd — build and test.
GO      ?= go
PKGS    := ./...
FUZZTIME ?= 10s
# Minimising every new input stalls short runs; a crasher is still kept whole.
FUZZMIN  ?= 5s

.PHONY: build test ci fmt-check vet fuzz-short chaos chaos-short install

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
# SQLite and — when FOLLOWUPD_TEST_POSTGRES is set — Postgres, then short fuzz
# runs and the chaos suite shortened.
ci: fmt-check vet
	./.ci/gotest
	$(MAKE) fuzz-short
	$(MAKE) chaos-short

# The chaos suite: three replicas on a private Postgres, real Dovecot, a
# faulty SMTP sink, SIGKILLs and restarts; one JSON line at the end. It needs
# root (Postgres runs as the postgres user) and Debian's postgresql and
# dovecot packages.
chaos:
	scripts/chaos

chaos-short:
	scripts/chaos -short

fuzz-short:
	@set -e; grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do \
	  dir=$$(dirname $$f); \
	  for fz in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/^func //'); do \
	    echo "fuzz $$dir $$fz ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$fz$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMIN) $$dir || exit 1; \
	  done; \
	done
