.PHONY: run test bench bench-http

# Builds and starts regiond on http://127.0.0.1:8080, state in ./regiond-state;
# installs libmicrohttpd-dev when missing.
run:
	scripts/install-deps.sh --no-python
	swift run -c release regiond

# Runs every test; installs libmicrohttpd-dev and the Python tools when missing.
test:
	scripts/test.sh

# The allocator benchmark (package-benchmark, in Benchmarks/).
bench:
	cd Benchmarks && swift package --disable-sandbox benchmark

# regiond against a bare libmicrohttpd handler, and RSS over 1,000,000 requests.
bench-http:
	bench/run.sh
	bench/rss.sh
