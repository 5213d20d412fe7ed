.PHONY: run test bench

# Runs the allocator benchmark (the server comes with the next issue).
run:
	cd Benchmarks && swift package --disable-sandbox benchmark

# Runs every test; installs libmicrohttpd-dev and the Python tools when missing.
test:
	scripts/test.sh
