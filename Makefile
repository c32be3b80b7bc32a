# The two commands a user needs: `make demo` and `make test`.
# Both create .venv when it is missing and install what the job needs (once per change of setup.cfg).

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum setup.cfg 2>/dev/null | cut -d' ' -f1)
DEMO_DIR ?= demo_output
# Two pytest-xdist workers, one per core; each test file runs whole in one worker (its module fixtures once).
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: demo test setup system-deps bench clean

demo: setup
	$(PY) -m actionfusion demo --out $(DEMO_DIR)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

setup: system-deps $(STAMP)

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

# open3d needs Debian's libusb-1.0-0. Install it when missing and we are root; otherwise say what to install.
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
			echo "installing libusb-1.0-0 (needed by open3d)"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0) >/dev/null; \
		else \
			echo "NOTE: open3d needs the system library libusb-1.0 (Debian/Ubuntu: sudo apt-get install libusb-1.0-0)"; \
		fi; \
	fi

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
