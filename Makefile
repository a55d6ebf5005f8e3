# The two commands of README.md:
#   make book   execute every chapter and build the HTML book in _build/html
#   make test   unit tests, real-data tests, the book build, nbval, browser checks
# Data: $FPCORE_DATA (default data/); trained-model cache: $FPCORE_CACHE.
# Book options: make book BOOK_ARGS="--profile full" (see python -m tools.build_book --help)

PYTHON ?= python
PIP    ?= $(PYTHON) -m pip
PYTEST := $(PYTHON) -m pytest -q
BOOK_ARGS ?=
STAMP  := _build/.install-stamp

.PHONY: install book test test-unit test-realdata test-notebooks test-book clean

install: $(STAMP)

# Runs once (again only when the dependency lists change). torch==2.13.0 is
# installed only when no torch is present: on the course machines pip takes it
# from a local CPU wheel instead of downloading a CUDA build.
$(STAMP): pyproject.toml requirements.txt
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install "torch==2.13.0"
	$(PIP) install -r requirements.txt
	@mkdir -p $(dir $@) && touch $@

book: install
	$(PYTHON) -m tools.build_book $(BOOK_ARGS)

# Every chapter is executed twice, and each execution proves something the other does not:
# 1. papermill (the book build) runs each chapter with its parameters (PROFILE, SEED):
#    every cell and assert passes, and its outputs are what the HTML book shows. It also
#    fills fpcore's model cache.
# 2. nbval (test-notebooks) re-executes those executed notebooks in a fresh kernel and
#    compares every output with the published one (strict: --nbval), after masking
#    durations, progress bars and memory addresses (tests/nbval_sanitize.cfg): the
#    numbers, tables and glued values the book shows are reproduced by running the
#    chapter again. Its trained models come from the cache the build filled.
# Order: the fast unit tests first; the build (--reuse skips chapters an earlier
# `make book` already executed with the same inputs), which on a CPU trains the
# chapters' networks one process per core and then runs the chapters the same way,
# one torch thread each; the real-data tests, which find most of their networks in the
# cache the build filled; nbval on the build's output (a notebook per process, with the
# build's torch threads: conftest.py); then the browser checks on _build/html.
test: install
	$(MAKE) test-unit
	$(PYTHON) -m tools.build_book --reuse $(BOOK_ARGS)
	$(MAKE) test-realdata
	$(MAKE) test-notebooks
	$(MAKE) test-book

# fpcore's unit tests and the chapters' source checks; no training on real data, no build.
test-unit: install
	$(PYTEST) -m "not book and not realdata"

# One test per CPU core, one torch thread each: what they train matches the book's and
# the study's networks (tools/build_book.py, kernel_threads).
test-realdata: install
	OMP_NUM_THREADS=1 $(PYTEST) -m realdata -n auto

# The notebooks the book build executed (_build/stage/chapters/NN_name.ipynb, never the
# template); make test-notebooks NOTEBOOKS="_build/stage/chapters/01_introduction.ipynb"
# checks some only.
NOTEBOOKS ?= $$($(PYTHON) -m tools.build_book --list-notebooks)
test-notebooks: install
	FPCORE_BOOK=1 $(PYTEST) --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg \
	  -n auto --dist loadscope $(NOTEBOOKS)

test-book: install
	$(PYTEST) -m book tests/test_book.py

clean:
	rm -rf _build .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Benchmarks (bench/README.md): rewrites bench/RESULTS.md in about 10-15 min on 2 shared cores.
# make bench BENCH_ARGS="--book" also rebuilds the whole book first; --help lists the options.
BENCH_ARGS ?=
.PHONY: bench
bench: install
	$(PYTHON) -m bench.run $(BENCH_ARGS)

# The autograded assignments (assignments/README.md): student notebooks and
# instructors' autograder.zip packages in _build/assignments/.
.PHONY: assignments test-assignments
assignments: install
	$(PYTHON) -m assignments.build

# Their tests alone (the grading tests are marked realdata, so test-realdata runs them too).
test-assignments: install
	$(PYTEST) tests/test_assignments.py

# The published model files (fpcore/release.py): train or take from the cache every
# network the chapters use, copy them to _build/release/ and rewrite fpcore/manifest.json.
# Then upload _build/release/* to the release address and commit the manifest.
RELEASE_ARGS ?= --profiles quick --seeds 0
.PHONY: release
release: install
	$(PYTHON) -m fpcore.release build $(RELEASE_ARGS)

# The findings over several seeds (fpcore/study.py): trains and defends a few hundred
# networks, hours on 2 CPU cores, so it is not part of `make test`. Each part runs in
# STUDY_JOBS processes (one per core) and resumes where it stopped; `collect` writes the
# committed results files fpcore/results/<part>.json that chapters 06-10 and 12 read.
STUDY_PARTS ?= seeds recipe phases budget
STUDY_JOBS  ?= 2
.PHONY: study
study: install
	@for part in $(STUDY_PARTS); do \
	  pids=""; \
	  for i in $$(seq 0 $$(($(STUDY_JOBS) - 1))); do \
	    $(PYTHON) -m fpcore.study run $$part --shard $$i/$(STUDY_JOBS) --threads 1 & pids="$$pids $$!"; \
	  done; \
	  for p in $$pids; do wait $$p || exit 1; done; \
	done
	$(PYTHON) -m fpcore.study collect $(STUDY_PARTS)
