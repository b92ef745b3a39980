# Developer gates. `make check` before a commit; `make bench` for figures (release build).
.PHONY: check build test bench vectors

check: build test

build:
	swift build

test:
	Scripts/test

bench:
	swift run -c release coffre-bench core

# Rewrite the file-format test vectors (only when the format changes on purpose).
vectors:
	COFFRE_WRITE_VECTORS=1 swift test --filter VectorTests
