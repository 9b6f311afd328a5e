# The two commands a newcomer needs: `make run` and `make test`.
PORT ?= 8000
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
BIN := .venv/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv
# Survey links in e-mails point at the server make run starts.
export SITE_URL ?= http://127.0.0.1:$(PORT)

.PHONY: run test install lint format bench worker beat clean

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	touch $@

install: .venv/.synced

run: install
	$(BIN)/cxloop migrate --noinput
	$(BIN)/cxloop devsetup
	@# Without a Celery broker the dispatcher sends due survey invitations in-process.
	$(BIN)/cxloop dispatcher & DISPATCHER=$$!; trap 'kill $$DISPATCHER 2>/dev/null' EXIT INT TERM; \
	$(BIN)/cxloop runserver 127.0.0.1:$(PORT)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy cxloop benchmarks
	$(BIN)/cxloop makemigrations --check --dry-run

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

worker: install
	$(BIN)/celery -A cxloop worker -l info -Q default,delivery

beat: install
	$(BIN)/celery -A cxloop beat -l info

clean:
	rm -rf .venv $(TOOLS)
