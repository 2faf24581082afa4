"""The notebooks: committed outputs from one clean cpu run, conventions, and a smoke execution of each (both
editions in one kernel).

(`make test` also runs nbval on copies of them (tests/nbval_copies.py), which re-executes them and compares the
cells marked `# NBVAL_CHECK_OUTPUT` with their committed outputs.)
"""

import json
import re
import tomllib
from pathlib import Path

import nbformat
import pytest

from course_lib.editions import COMPLETE_TAG, LEARNER_TAG, answers_outside_checks, both_editions, solution_regions
from course_lib.notebook_cells import COMMITTED_NOTE, outputs_profile, repository_url, setup_cell
from course_lib.results import metrics_from_notebook
from course_lib.runner import execute

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
assert repository_url(ROOT) == REPO_URL
OWNER_REPO = REPO_URL.removeprefix("https://github.com/")
IDS = [p.stem for p in NOTEBOOKS]


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_notebooks_exist_in_order():
    """Numbered 00, 01, ... in the syllabus's order (notebook 00's table, 20 chapters), each number once. A chapter
    still in drafts/ leaves its number free (15 is drafted while 16-17 exist), so gaps are allowed; the first two
    are not optional."""
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == sorted(set(numbers)) and numbers[:2] == [0, 1] and numbers[-1] <= 20, numbers


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_outputs_are_one_clean_cpu_run(path):
    nb = nbformat.read(path, as_version=4)
    counts = [c.execution_count for c in code_cells(nb) if c.source.strip()]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: execution counts {counts}"
    errors = [o for c in code_cells(nb) for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} has error outputs"
    warned = [line for c in code_cells(nb) for o in c.outputs if o.output_type == "stream" and o.name == "stderr"
              for line in o.text.splitlines() if "Warning:" in line]
    assert not warned, f"{path.name}: the committed run printed warnings a learner would see: {warned[:3]}"
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and outputs_profile(nb) == "cpu", \
        f"{path.name} was not committed from a cpu-profile run of the runner"
    # Committed, the injected cell only says which profile produced the outputs: a learner who runs the
    # notebook gets the parameters cell's "auto" (gpu on a GPU), not the cpu profile of the committed run.
    assert injected[0].source == COMMITTED_NOTE.format(profile="cpu"), \
        f"{path.name}: run `python -m course_lib sync` (the injected cell pins PROFILE)"
    assert metrics_from_notebook(nb), f"{path.name} records no results"
    # The complete edition passes every check: no stub left, no wrong answer, no wrong prediction.
    said = "".join(o.get("text", "") for c in code_cells(nb) for o in c.outputs if o.output_type == "stream")
    for verdict in ("Not answered yet", "Not quite", "No prediction made", "not one of"):
        assert verdict not in said, f"{path.name}: a check printed {verdict!r}"
    assert not re.search(r"^Measured .*, not ", said, re.M), f"{path.name}: a prediction was wrong"
    assert said.count("Correct!") + said.count("Right: measured") >= sum(
        len(solution_regions(c.source)) for c in code_cells(nb)), f"{path.name}: a solution is not checked"
    assert path.stat().st_size <= 1.5 * 2**20, f"{path.name} is {path.stat().st_size / 2**20:.2f} MB"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_conventions(path):
    nb = nbformat.read(path, as_version=4)
    cells = code_cells(nb)
    setup, params = cells[0], cells[1]
    assert setup.source == setup_cell(REPO_URL), f"{path.name}: run `python -m course_lib sync`"
    assert "google.colab" in setup.source and f'REPO_URL = "{REPO_URL}"' in setup.source
    assert "parameters" in params.metadata.get("tags", []) and 'PROFILE = "auto"' in params.source
    badge = f"https://colab.research.google.com/github/{OWNER_REPO}/blob/main/notebooks/{path.name}"
    assert badge in nb.cells[0].source, f"{path.name}: Colab badge should point at {badge}"
    assert "check_" in "".join(c.source for c in cells[-8:]), "exercises with check_* answers at the end"


def test_readme_badges_point_at_existing_notebooks():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"colab\.research\.google\.com/github/([^)\s]+)", readme)
    assert len(targets) == 2 * len(NOTEBOOKS)  # the complete and the learner edition of each
    assert sum("/blob/main/learner/" in t for t in targets) == len(NOTEBOOKS)
    for target in targets:
        owner_repo, path = target.split("/blob/main/")
        assert owner_repo == OWNER_REPO
        assert (ROOT / path).is_file(), target


def test_no_pickle_loading_anywhere():
    sources = [p for p in ROOT.glob("course_lib/**/*.py")] + NOTEBOOKS
    for path in sources:
        text = path.read_text()
        for call in re.findall(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in call, f"{path}: torch.load without weights_only=True"
        assert "pickle" + ".load" not in text and not re.search(r"(?<![\w.])eval\(", text), path


EXPECTED = {
    "00_start_here": {"fmnist_train_images", "fmnist_test_images", "scene_objects_mean"},
    "01_cnn_architectures": {"alexnet_test_acc", "googlenet_test_acc", "resnet_test_acc", "densenet_test_acc",
                             "judge_test_acc", "fid_test_halves", "fid_real_vs_noisy", "inception_reduce_flops_saving",
                             *(f"{a}_15ep_test_acc" for a in ("alexnet", "googlenet", "resnet", "densenet")),
                             *(f"{k}_{d}_train_{m}" for k in ("plain", "res") for d in ("shallow", "deep")
                               for m in ("err", "loss"))},
    "03_rcnn": {"ss_recall50", "random_boxes_recall50", "ss_proposals_per_scene", "rcnn_map50", "rcnn_seconds_per_image"},
    "04_yolo": {"yolo_map50", "yolo_images_per_second", "rcnn_images_per_second", "short_run_loss_first10",
                "short_run_loss_last10", "yolo_map50_same", "rcnn_map50_same", "yolo_map75_same", "rcnn_map75_same",
                "yolo_found_shared_cell", "yolo_found_own_cell", "rcnn_found_shared_cell", "rcnn_found_own_cell"},
    "02_inside_a_cnn": {"scene_classifier_acc", "saliency_box_iou", "regressor_box_iou", "saliency_pointing_acc",
                        "random_pointing_acc", "centre_pointing_acc", "fixed_box_iou", "top_purity_conv5"},
    "05_mask_rcnn": {"mask_map50", "box_map50", "torchmetrics_mask_map50", "tv_mask_map50", "tv_box_map50",
                     "mask_map75", "mask_ap", "box_ap", "tv_mask_map75", "tv_mask_ap", "tv_box_ap", "well_placed_class_acc",
                     "roipool_corner_shift_px", "roipool_mask_ap", "roipool_mask_map50", "roipool_mask_map75"},
    "06_autoencoders": {"pca_test_mse", "linear_ae_max_angle_deg", "linear_ae_test_mse", "plain_masked_mse",
                        "denoising_masked_mse", "plain_gauss_mse", "denoising_gauss_mse", "contractive_jacobian_norm",
                        "k_sparse_active_frac"},
    "07_vae": {"ae_prior_fid", "ae_fitted_prior_fid", "vae_prior_fid", "vae_test_nll_k100", "hvae_test_nll_k100",
               "vae2_median_posterior_sigma", "naive_prior_nll_k10000", "hvae_kl_level1", "hvae_kl_level2",
               *(f"beta{b}_{m}" for b in (0, 1) for m in ("median_sigma", "mean_spread", "prior_fid")),
               "vae_test_neg_elbo", "hvae_test_neg_elbo"},
    "08_vq_vae": {"perplexity_fix", "dead_codes_fix", "perplexity_nofix", "dead_codes_nofix", "recon_mse",
                  "recon_mse_nofix", "recon_fid", "recon_fid_nofix",
                  *(f"ablation_{m}_{v}" for m in ("perplexity", "dead_codes") for v in ("none", "kmeans", "restarts", "both")),
                  *(f"{m}_beta{b}" for m in ("commit_distance", "recon_mse") for b in ("0", "025", "2")),
                  "receptive_field_px", "background_codes", "prior_test_nll", "prior_test_bits_per_image",
                  "unigram_test_nll", "unigram_test_bits_per_image", "prior_fid", "unigram_fid", "prior_fid_floor", "prior_class_kl"},
    "09_gan_theory": {"prop1_max_abs_err", "prop2_max_deviation", "c_min_shifted", "g_grad_norm_saturating",
                      "g_grad_norm_nonsaturating", "gan_modes_hit", "gan_high_quality", "open_question_gap_at_dstar"},
    "10_dcgan_progan_stylegan": {"fid_floor", "vae_fid", "dcgan_short_fid", "dcgan_fid", "progan_fid", "stylegan_fid",
                                 "real_class_kl", "dcgan_class_kl", "progan_class_kl", "stylegan_class_kl"},
    "12_score_matching": {"score_autograd_max_err", "sm_relerr_high", "sm_relerr_low", "dsm_relerr_high", "dsm_relerr_low",
                          "dsm_vs_clean_relerr_high", "gauss_relerr_low", "exact_weight_heavy", "start_weight_heavy",
                          "langevin_weight_heavy", "annealed_weight_heavy", "annealed_learned_weight_heavy",
                          "pca_dims_90", "noise_dims_90", "n_fid", "fid_floor", "ncsn_fid", "ncsn_fid_no_denoise",
                          "noise_fid", "ncsn_class_kl"},
    "13_ddpm": {"forward_max_abs_mean", "forward_max_std_dev", "forward_min_ks_p", "forward_wrong_ks_d",
                "eps_zero_test_loss", "eps_linear_test_loss", "short_run_test_loss", "ddpm_test_loss", "dsm_link_rel_err",
                "dsm_link_gaussian_rel_err", "ddpm1000_seconds_per_image", "fid_floor", "ddim50_fid", "ddim10_fid",
                "one_shot_fid", "dae_chain_fid", "ddim50_fid_dae_count", "ddpm_class_kl", "ddpm_fid_shipped",
                "ddpm_fid_shipped_n", "ddpm_train_seconds", "vae_fid_compare", "dcgan_fid_compare", "ddim10_fid_noclip",
                "ddpm_fid_shipped_noclip"},
    "14_guidance": {"bayes_score_rel_err", "notes_sum_score_rel_err", "toy_bayes_acc",
                    *(f"toy_{m}_s{s}" for m in ("acc", "fd") for s in (0, 1, 2, 4)),
                    "cond_short_run_loss_first", "cond_short_run_loss_last", "cond_dropped_frac", "cfg_scale0_rel_err",
                    "cfg_scale1_rel_err", "cfg_cond_uncond_gap", "noisy_clf_acc_t0", "noisy_clf_acc_t500",
                    "judge_acc_noisy_t500", "cg_acc_s0", "cg_fid_s0", "real_judge_acc", "fid_floor", "cfg_acc_s0",
                    "cfg_fid_s0", "cfg_acc_s1", "cfg_fid_s1", "cfg_acc_s3", "cfg_fid_s3", "cfg_spread_s1",
                    "cfg_best_scale", "uncond_ddpm_fid"},
    "11_image_translation": {"patch_receptive_field", "fid_floor", "mean_image_test_l1", "mean_image_fid",
                             "edge_input_test_l1", "edge_input_fid", "l1only_test_l1", "l1only_fid", "pix2pix_test_l1",
                             "pix2pix_fid", "pix2pix_lambda1_test_l1", "pix2pix_lambda1_fid", "pix2pix_lambda10_test_l1",
                             "pix2pix_lambda10_fid", "short_l1only_test_l1", "short_pix2pix_test_l1",
                             "l1only_sharpness", "pix2pix_sharpness", "real_sharpness", "munit_diversity",
                             "pix2pix_diversity", "real_class_diversity", "munit_fid", "munit_class_kl",
                             "munit_content_acc", "pix2pix_content_acc", "edge_judge_acc", "judge_real_acc"},
    "15_latent_diffusion": {"real_class_acc", "real_size_acc", "real_brightness_acc", "real_position_acc",
                            "course_judge_on_captioned_acc", "compression_positions", "compression_bits", "recon_mse",
                            "recon_fid", "pooled_mse", "pooled_fid", "recon_fid_floor", "xattn_paths_rel_err",
                            "xattn_pads_rel_err", "short_run_loss_first", "short_run_loss_last", "caption_dropped_frac",
                            *(f"{m}_s{s}" for m in ("class_acc", "size_acc", "brightness_acc", "position_acc", "fid")
                              for s in (0, 1, 3)), "sweep_fid_floor", "pixel_seconds_per_image",
                            "latent_seconds_per_image", "latent_speedup", "flops_ratio", "attn_on_item_garment",
                            "pca_share_top2", "pca_judge_acc_k1", "pca_judge_acc_k2", "pca_judge_acc_k16", "pca_fid_k2",
                            "manifest_class_acc_s3", "manifest_fid_s3"},
    "16_image_gpt": {"palette_mean_abs_err", "ar_bits_per_token", "bigram_bits_per_token", "position_bits_per_token",
                     "unigram_bits_per_token", "judge_acc_top", "judge_acc_completion", "judge_acc_original",
                     "bert_masked_bits_per_token", "ar_masked_bits_per_token", "probe_pixels",
                     *(f"probe_{m}_layer{l}" for m in ("ar", "bert") for l in range(5)), "igpt_fid", "igpt_class_kl",
                     "igpt_fid_floor_pipeline", "vae_fid_same_protocol", "dcgan_fid_same_protocol"},
    "17_vision_transformer": {"timm_parity_rel_err", "vit_notebook_acc", "vit_test_acc", "vit_test_nll", "resnet_test_acc",
                              "vit_long_test_acc", "vit_long_test_nll",
                              "vit_10pct_acc", "resnet_10pct_acc", "gap_10pct_points", "gap_100pct_points",
                              "vit_acc_shift0", "resnet_acc_shift0", "pos_sim_neighbours", "pos_sim_far",
                              *(f"attn_dist_layer{l}_{m}" for l in range(1, 5) for m in ("min", "max"))},
    "18_beit": {"mask_fraction", "mim_acc", "mim_nll_bits", "mim_acc_nearest_visible", "mim_acc_most_frequent",
                "finetune_10pct_acc", "scratch_10pct_acc", "resnet_10pct_acc", "pretraining_gain_points",
                "probe_random_vit", "probe_beit", "tokenizer_mse"},
    "19_dalle": {"image_bits_per_token", "image_bits_wrong_caption", "image_bits_per_position", "best_class_acc",
                 "decoded_tokens_class_acc", "rerank_acc_first", "rerank_acc_clip", "rerank_acc_oracle"},
    "20_dalle2": {"zero_shot_bare_acc", "zero_shot_ensemble_acc", "recall1_image_to_caption", "recall1_caption_to_image",
                  "recall1_ceiling_image_to_caption", "recall1_ceiling_caption_to_image", "prior_cos", "text_emb_cos",
                  "retrieval_prior_cos", "true_emb_class_acc"},
}


TIMINGS = ("_seconds", "_per_second", "seconds_per_image")


def test_solution_answers_reach_only_the_checks():
    """What a solution region binds (the learner's function, answer, prediction) is used later only as an argument
    of a check_* call: every other cell then computes the same in both editions, which lets the smoke test run
    both editions in one kernel (course_lib.editions.both_editions)."""
    found = {p.stem: answers_outside_checks(nbformat.read(p, as_version=4)) for p in NOTEBOOKS}
    assert not any(found.values()), {k: v for k, v in found.items() if v}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_smoke_execution(path, tmp_path):
    """Execute the notebook with papermill in the smoke profile, both editions in one kernel: each cell with a
    solution runs first as the learner edition has it (nothing filled in) and then complete
    (course_lib.editions.both_editions; the test above makes that equivalent to running each edition from the
    top). The learner's checks say "not answered yet" and the notebook goes on with course_lib's code; no check
    says "Not quite"; every expected number is recorded."""
    nb = nbformat.read(path, as_version=4)
    combined = tmp_path / f"both_{path.name}"
    nbformat.write(both_editions(nb), combined)
    result = execute(combined, tmp_path / path.name, "smoke")
    assert "error" not in result, result.get("error")
    ran = nbformat.read(tmp_path / path.name, as_version=4)
    said = {tag: [("".join(o.get("text", "") for o in c.outputs), c.source) for c in ran.cells
                  if c.cell_type == "code" and tag in c.metadata.get("tags", [])] for tag in (LEARNER_TAG, COMPLETE_TAG)}
    assert len(said[LEARNER_TAG]) == len(said[COMPLETE_TAG]) == sum(
        1 for c in nb.cells if c.cell_type == "code" and solution_regions(c.source))
    unanswered = [src[:80] for text, src in said[LEARNER_TAG] if "check_" in src
                  and "Not answered yet" not in text and "No prediction made" not in text]
    assert not unanswered, unanswered
    everything = "".join(o.get("text", "") for c in ran.cells if c.cell_type == "code" for o in c.outputs)
    assert "Not quite" not in everything and "Traceback" not in everything
    metrics = result["metrics"]
    assert EXPECTED.get(path.stem, set()) <= set(metrics), sorted(metrics)
    if path.stem == "00_start_here":
        assert metrics["fmnist_train_images"] == 60000 and metrics["fmnist_test_images"] == 10000
        assert 1 <= metrics["scene_objects_mean"] <= 4
    if path.stem == "01_cnn_architectures":
        # the shipped judge is loaded even in the smoke profile, so its accuracy is real
        assert metrics["judge_test_acc"] >= 0.92
        # ... and so are the four 15-epoch CNNs (a fallback would train a few steps and land far lower)
        assert all(metrics[f"{a}_15ep_test_acc"] >= 0.9 for a in ("alexnet", "googlenet", "resnet", "densenet"))
        assert 0 <= metrics["fid_test_halves"] < metrics["fid_real_vs_noisy"]
        assert metrics["inception_reduce_flops_saving"] > 1  # a count of FLOPs: meaningful in smoke
    if path.stem in ("03_rcnn", "04_yolo"):  # shipped detectors: meaningful even on a few smoke scenes
        assert metrics.get("rcnn_map50", 1) > 0.3 and metrics.get("yolo_map50", 1) > 0.3
    if path.stem == "04_yolo":
        assert metrics["yolo_images_per_second"] > metrics["rcnn_images_per_second"]
    if path.stem == "02_inside_a_cnn":
        assert all(0 <= metrics[name] <= 1 for name in EXPECTED[path.stem])
        assert metrics["scene_classifier_acc"] > 0.5  # shipped, so meaningful even in smoke
    if path.stem == "05_mask_rcnn":  # the shipped model, so meaningful even on the smoke scenes
        assert metrics["mask_map50"] > 0.5 and metrics["mask_map50"] == pytest.approx(metrics["torchmetrics_mask_map50"])
    if path.stem == "08_vq_vae":  # shipped tokenizers, so meaningful even in smoke
        assert metrics["dead_codes_fix"] < metrics["dead_codes_nofix"] and metrics["recon_mse"] < 0.015
    if path.stem == "12_score_matching":   # exact scores: meaningful in smoke
        assert metrics["langevin_weight_heavy"] < 0.65 < 0.7 < metrics["annealed_weight_heavy"]
        assert metrics["sm_relerr_low"] > metrics["sm_relerr_high"] and metrics["dsm_relerr_low"] < metrics["sm_relerr_low"]
    if path.stem == "14_guidance":         # exact densities and the shipped models: meaningful in smoke
        assert metrics["bayes_score_rel_err"] < 1e-9 < 0.3 < metrics["notes_sum_score_rel_err"]
        assert metrics["cfg_scale0_rel_err"] < 1e-5 and metrics["cfg_scale1_rel_err"] < 1e-5
        assert metrics["noisy_clf_acc_t0"] > metrics["noisy_clf_acc_t500"] > 0.3 and 0.05 < metrics["cond_dropped_frac"] < 0.2
    if path.stem == "15_latent_diffusion":  # the shipped tokenizer, judge and exact kernels: meaningful in smoke
        assert metrics["real_size_acc"] > 0.95 and metrics["real_brightness_acc"] > 0.95 and metrics["real_class_acc"] > 0.7
        assert metrics["compression_positions"] == 16 and metrics["recon_mse"] < metrics["pooled_mse"]
        assert metrics["xattn_paths_rel_err"] < 1e-12 and metrics["xattn_pads_rel_err"] < 1e-12
        assert metrics.get("xattn_diffusers_rel_err", 0) < 1e-12 and 0.03 < metrics["caption_dropped_frac"] < 0.2
        assert metrics["flops_ratio"] > 2 and metrics["pca_share_top2"] > 0.99        # the tokenizer's spectrum
        assert metrics["manifest_class_acc_s3"] > 0.8                                   # ldm_text is shipped
    if path.stem == "16_image_gpt":        # the palette and the counting baselines need no trained network
        assert metrics["palette_mean_abs_err"] < 0.02 and metrics["judge_acc_original"] > 0.7
        assert metrics["bigram_bits_per_token"] < metrics["position_bits_per_token"] < metrics["unigram_bits_per_token"] < 4
        assert metrics["ar_bits_per_token"] < metrics["bigram_bits_per_token"]        # igpt_ar is shipped
    if path.stem == "17_vision_transformer":  # timm parity is exact in any profile; the classifiers are shipped
        assert metrics["timm_parity_rel_err"] < 1e-5 and metrics["resnet_test_acc"] > 0.85
        assert metrics["vit_test_acc"] > 0.8 and metrics["vit_10pct_acc"] > 0.8 and metrics["resnet_10pct_acc"] > 0.8
    if path.stem == "18_beit":             # masking statistics and the tokenizer need no training
        assert 0.39 < metrics["mask_fraction"] <= 20 / 49 and metrics["tokenizer_mse"] < 0.01
        assert metrics["finetune_10pct_acc"] > 0.8 and metrics["mim_acc"] > metrics["mim_acc_nearest_visible"]  # shipped
    if path.stem == "19_dalle":            # the tokenizer's decoded real tokens: the samples' ceiling
        assert metrics["decoded_tokens_class_acc"] > 0.6
    if path.stem == "20_dalle2":           # clip and unclip_prior are shipped: zero-shot and the prior's gain hold
        assert metrics["zero_shot_ensemble_acc"] > 0.6 and metrics["prior_cos"] > metrics["text_emb_cos"]
        assert metrics["recall1_ceiling_caption_to_image"] <= metrics["recall1_ceiling_image_to_caption"] <= 1
    if path.stem == "13_ddpm":             # the forward-process check and the trivial predictors need no training
        assert metrics["forward_min_ks_p"] > 1e-3 and metrics["forward_wrong_ks_d"] > 0.1
        assert metrics["eps_linear_test_loss"] < metrics["eps_zero_test_loss"] == pytest.approx(1, abs=0.05)
        assert metrics["dsm_link_rel_err"] < metrics["dsm_link_gaussian_rel_err"]
    print(json.dumps({path.stem: result["seconds"]}))



CPU_TOLERANCE = 0.02  # relative. Two cpu runs on one machine agree exactly; other CPUs and thread counts round differently.
# The loss at the end of the notebook's own 200-step training run is chaotic in the rounding: measured on one
# machine, AVX2 kernels on 1 thread gave 2.014 and the plain kernels (ATEN_CPU_CAPABILITY=default) on
# 2 threads gave 1.902 (5.6 % apart), while the first 10 steps agreed to 0.03 %. So that one number gets
# a wider tolerance, above the measured kernel-path spread.
TRAINED_TOLERANCE = {"short_run_loss_last10": 0.10}


@pytest.mark.slow
def test_cpu_rerun_agrees_with_the_committed_run(tmp_path):
    """Run notebook 04 in the cpu profile again, up to the cell that records the shipped detector's mAP (its own
    short visible training run, then the shipped detector): every number it records agrees with the committed
    cpu run, timings excepted -- the losses of the notebook's own training within their tolerances, the shipped
    detector's mAP within CPU_TOLERANCE. (The cells after it, the R-CNN comparison and the crowded scenes, only
    evaluate shipped detectors on more scenes: 100 s of the notebook's 210 s, which this test leaves out.)"""
    path = ROOT / "notebooks" / "04_yolo.ipynb"
    nb = nbformat.read(path, as_version=4)
    committed = metrics_from_notebook(nb)
    last = next(i for i, c in enumerate(nb.cells) if 'record("yolo_map50"' in c.source)
    nb.cells = nb.cells[: last + 1]
    nbformat.write(nb, tmp_path / "copy.ipynb")
    run = execute(tmp_path / "copy.ipynb", tmp_path / path.name, "cpu")
    assert "error" not in run, run.get("error")
    compared = {k for k in committed if not k.endswith(TIMINGS)} & set(metrics_from_notebook(nb))
    assert compared == {"short_run_loss_first10", "short_run_loss_last10", "yolo_map50"} and compared <= set(run["metrics"])
    assert committed["short_run_loss_last10"] < 0.5 * committed["short_run_loss_first10"]  # it did train
    far = {k: (committed[k], run["metrics"][k]) for k in compared
           if abs(run["metrics"][k] - committed[k]) > TRAINED_TOLERANCE.get(k, CPU_TOLERANCE) * abs(committed[k])}
    assert not far, far
