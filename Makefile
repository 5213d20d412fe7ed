.PHONY: run test bench

# Runs the allocator benchmark (the server comes with the next issue).
run: bench

# Runs the allocator benchmarks (Benchmarks/, package-benchmark): PoolAllocator
# against the reference allocator, wall clock and malloc counts per operation.
# No environment is needed: package-benchmark 1.38 has no jemalloc, and the
# malloc counts come from its MallocInterposer trait, set in Benchmarks/Package.swift.
bench:
	cd Benchmarks && swift package --disable-sandbox benchmark

# Runs every test; installs libmicrohttpd-dev and the Python tools when missing.
test:
	scripts/test.sh
