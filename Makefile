# The two commands of README.md:
#   make book   execute every chapter and build the HTML book in _build/html
#   make test   unit tests, the book build, nbval on the notebooks, browser checks
# Data: $FPCORE_DATA (default data/); trained-model cache: $FPCORE_CACHE.
# Book options: make book BOOK_ARGS="--profile full" (see python tools/build_book.py --help)

PYTHON ?= python
PIP    ?= $(PYTHON) -m pip
BOOK_ARGS ?=
STAMP  := _build/.install-stamp

.PHONY: install book test test-unit test-notebooks test-book clean

install: $(STAMP)

# Runs once (again only when the dependency lists change). torch==2.13.0 is
# installed only when no torch is present: on the course machines pip takes it
# from a local CPU wheel instead of downloading a CUDA build.
$(STAMP): pyproject.toml requirements.txt
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install "torch==2.13.0"
	$(PIP) install -e ".[book,test]" -r requirements.txt
	@mkdir -p $(dir $@) && touch $@

book: install
	$(PYTHON) tools/build_book.py $(BOOK_ARGS)

# Order that reuses work: the unit tests first (they fail fast), then the book
# build (papermill executes every chapter and fills fpcore's model cache), then
# nbval on the committed notebooks (the cache makes this second run cheap), then
# the browser checks, which reuse the _build/html just built instead of building
# again. --reuse skips chapters already executed by an earlier `make book`.
test: install
	$(MAKE) test-unit
	$(PYTHON) tools/build_book.py --reuse $(BOOK_ARGS)
	$(MAKE) test-notebooks
	$(MAKE) test-book

test-unit: install
	$(PYTHON) -m pytest -q -m "not book"

# Only the chapters listed in _toc.yml that exist (never chapters/_template.md).
test-notebooks: install
	$(PYTHON) -m pytest -q --nbval-lax $$($(PYTHON) tools/build_book.py --list-notebooks)

test-book: install
	$(PYTHON) -m pytest -q tests/test_book.py

clean:
	rm -rf _build .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Benchmarks (bench/README.md): rewrites bench/RESULTS.md in about 10-15 min on 2 shared cores.
# make bench BENCH_ARGS="--book" also rebuilds the whole book first; --help lists the options.
BENCH_ARGS ?=
.PHONY: bench
bench: install
	$(PYTHON) bench/run.py $(BENCH_ARGS)
