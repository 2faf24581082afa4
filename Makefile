# Two commands from a fresh clone:  `make course` runs the course, `make test` passes the tests.
# Every target does its own setup and is safe to run again.

VENV       ?= .venv
PYTHON     ?= python3
TORCH_PIN  ?= torch==2.14.1 torchvision==0.29.1
PROFILE    ?= auto
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
JOBS       ?= 2

.PHONY: setup data browser course test lab results learner checkpoints site clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Fashion-MNIST: Debian's package where apt works (as root), then a check that course_lib finds it
# (it also looks in $$COURSE_DATA and data/, and downloads with torchvision where the network allows).
data: $(STAMP)
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
		|| echo "apt-get could not install dataset-fashion-mnist; trying the other sources"; \
	fi
	$(PY) -c "from course_lib.data import fashion_mnist as f; print('Fashion-MNIST:', len(f('train')), 'train,', len(f('test')), 'test')"

# Debian's Chromium for tests/test_browser.py (Playwright drives it; no browser download). Without it,
# as a non-root user, that test is skipped and says how to install it.
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "apt-get could not install chromium; the browser test will be skipped"; \
	fi

# Execute every notebook headless (profile: auto = gpu with CUDA, else cpu) and print the results table.
course: setup
	$(PY) -m course_lib run --profile $(PROFILE) --out runs/$(PROFILE)

# The kernel-vs-oracle tests, run a second time under another CPU kernel set and thread count.
KERNEL_TESTS := tests/test_kernel_paths.py tests/test_inside.py tests/test_detection_kernels.py tests/test_roi.py \
	tests/test_maskrcnn.py tests/test_autoencoders.py tests/test_vae.py tests/test_vq.py tests/test_vq_prior.py tests/test_cnn.py \
	tests/test_metrics.py tests/test_fuzz.py tests/test_fuzz_autoencoders.py tests/test_fuzz_segmentation.py \
	tests/test_gans.py tests/test_gans_images.py tests/test_translation.py tests/test_diffusion.py tests/test_guidance.py \
	tests/test_transformers.py tests/test_igpt.py tests/test_beit.py tests/test_dalle.py
# ... less the tests of training behaviour in those files (a loss goes down, a run resumes, a shipped checkpoint
# fits, selective search's recall on real scenes): they compare no kernel with an oracle, and took 40 % of the pass.
KERNEL_ONLY := not (loss_goes_down or loss_go_down or lowers or training or resumes or seconds_count or tightens \
	or memorizes or trains_caches or shipped or recall_on_real or ranks_noise)

# Unit tests, every notebook executed in the smoke profile (papermill, both editions in one kernel; in parallel:
# tests are spread one by one over the workers, except the files with an expensive module fixture, kept on one
# worker by xdist_group); nbval on copies of the committed notebooks (injected PROFILE set to smoke, each ending at
# its last cell marked NBVAL_CHECK_OUTPUT) for those marked cells.
# Then the kernel tests again with PyTorch's plain C++ kernels (ATEN_CPU_CAPABILITY=default instead of
# AVX2/AVX-512) on 2 threads, as another CPU would compute them: tolerances must hold on any machine. (One process:
# two xdist workers of 2 threads each oversubscribe 2 cores, 3:55 against 2:11.)
test: setup browser
	$(PY) tests/nbval_copies.py runs/nbval
	OMP_NUM_THREADS=1 COURSE_PROFILE=smoke COURSE_HEADLESS=1 $(PY) -m pytest -n $(JOBS) --dist loadgroup --durations=15 tests
	OMP_NUM_THREADS=1 COURSE_PROFILE=smoke COURSE_HEADLESS=1 $(PY) -m pytest -n $(JOBS) --dist loadfile --nbval-lax runs/nbval
	ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=2 COURSE_PROFILE=smoke $(PY) -m pytest -q -p no:cacheprovider $(KERNEL_TESTS) \
		-k "$(KERNEL_ONLY)"

lab: setup
	$(VENV)/bin/jupyter lab notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Re-execute the committed notebooks in the cpu profile and refresh README's results table.
results: setup
	$(PY) -m course_lib run --profile cpu --out runs/cpu --inplace --readme README.md
	$(PY) -m course_lib learner

# Regenerate the learner edition (learner/) from the complete notebooks.
learner: setup
	$(PY) -m course_lib learner

# Retrain the shipped checkpoints (data/checkpoints) with one command.
checkpoints: setup
	$(PY) -m course_lib checkpoints

# The course website from the committed notebooks (Sphinx + myst-nb, nothing executed; MathJax from npm, kept
# offline in the site): open build/site/html/index.html. tests/test_site.py builds it too and checks it in Chromium.
site: setup
	$(PY) -m course_lib site --out build/site

clean:
	rm -rf $(VENV) runs .pytest_cache
