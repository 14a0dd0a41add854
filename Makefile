# `make demo` and `make test` create .venv on first use (Python 3.11 from $(PYTHON)), install
# the project with the exact dependency versions of constraints.txt (pyproject.toml declares
# ranges), then run. The install is redone only when pyproject.toml or constraints.txt changes
# (the stamp file records the last install).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast clean-demo

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "setuptools<81" wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pipeline synth --out data/synthetic
	$(BIN)/pipeline run configs/demo.yaml
	$(BIN)/pipeline stages configs/demo.yaml

# pytest exits 5 when it collected no tests: that is a broken suite, not a pass.
test: $(STAMP)
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

clean-demo:
	rm -rf runs/demo data/synthetic
