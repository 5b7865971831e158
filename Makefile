# The two set-up commands of the README:
#   make demo   create .venv if missing, install, run the workflow on the embedded demo data
#   make test   create .venv if missing, install, run the test suite
# Everything else here is a helper of those two.

PYTHON ?= python3
VENV   ?= .venv
CORES  ?= 2
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install lint clean-demo

# --prioritize: the driving branch's jobs first (results/kitti_eval.csv early); the endoscopy
# branch's single-threaded jobs fill the cores the driving branch leaves free.
demo: install
	$(BIN)/snakemake all --cores $(CORES) --resources gpu=1 --prioritize results/kitti_eval.csv

test: install
	$(BIN)/python -m pytest -q

install: $(STAMP)

# Re-installs when requirements.txt changes. open3d needs Debian's libusb-1.0-0 (see README).
$(STAMP): requirements.txt
	@bash .ci/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -c "import open3d, torch, cv2, pycolmap, snakemake" 
	touch $(STAMP)

# The code checks of tests/test_code_quality.py, for a quick look while editing.
lint: install
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile rules
	PYTHONPATH=. $(BIN)/lint-imports
	$(BIN)/snakemake --lint

clean-demo:
	rm -rf resources/demo results logs benchmarks
