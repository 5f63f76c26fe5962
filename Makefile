# The two commands of the README: `make run` starts the app, `make test` runs every test.
# Each builds .venv from the repo's own requirement files first (again whenever they change).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
PORT   ?= 8501
# Only this machine can reach the app; `make run ADDRESS=0.0.0.0` listens on every interface.
ADDRESS ?= 127.0.0.1

.PHONY: run test system bench

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT)

# The browser tests drive Debian's Chromium, the history tests start a throwaway PostgreSQL and the proxy tests run
# the README's nginx and Caddy blocks; install what is missing from Debian's packages (needs root, as on CI).
system:
	@command -v chromium >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && \
	  command -v caddy >/dev/null && test -x /usr/sbin/nginx || \
	  { apt-get update -q && apt-get install -y -q chromium postgresql nginx caddy; }

# Three workers on two cores: most tests wait on a browser, a server or a model, not on the CPU (8.8 vs 11.9 min);
# a file's tests stay on one worker, so module fixtures (servers, the model) start once per file.
test: $(STAMP) system
	$(PY) -m pytest -n 3 --dist loadfile

bench: $(STAMP)
	for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done
