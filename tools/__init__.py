"""The book tooling: tools/build_book.py (also importable as tools.build_book) and
tools/book_fixes.py, a Sphinx extension of the book (_config.yml)."""
