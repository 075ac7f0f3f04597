"""pytest setup for running transformers' own generic model tests against tinygpt.

A trimmed copy of what transformers' root conftest.py does that matters here: the markers its tests use,
its shared command-line options, and no safetensors auto-conversion (which would reach the Hub). Everything
runs offline (HF_HUB_OFFLINE=1): a test that needs the network is a harness problem, not a model defect.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
UPSTREAM = os.path.join(HERE, "upstream")  # fetch.sh puts transformers' tests/ (and utils/) here
if not os.path.isdir(os.path.join(UPSTREAM, "tests")):
    sys.exit(f"no transformers tests in {UPSTREAM}: run fetch.sh first (see README.md)")
if UPSTREAM not in sys.path:  # `tests` (transformers' test package) must resolve to ./upstream/tests
    sys.path.insert(0, UPSTREAM)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "true")


def pytest_configure(config):
    for marker in (
        "slow", "is_pipeline_test", "is_staging_test", "accelerate_tests", "not_device_test",
        "torch_compile_test", "torch_export_test", "flash_attn_test", "flash_attn_3_test", "flash_attn_4_test",
        "all_flash_attn_test", "training_ci", "tensor_parallel_ci", "fsdp_ci", "generate", "onnx_export_test", "executorch_export_test",
        "openvino_export_test", "dynamo_export_test", "torch_export_test",
    ):
        config.addinivalue_line("markers", f"{marker}: transformers test marker")


def pytest_sessionstart(session):
    # A model inside transformers is listed in the auto mappings' name tables, which the generic tests read to
    # decide e.g. whether a class takes token `labels` (test_training, the gradient-checkpointing tests,
    # test_causal_lm_loss_honors_shift_labels). tinygpt registers itself with the Auto classes at import time,
    # which fills the lazy mappings, not these tables, so add its causal-LM name here. No base model entry
    # (MODEL_MAPPING_NAMES): tinygpt has none by design (base_model_prefix = "").
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.setdefault("tinygpt", "TinyGPTForCausalLM")

    # tests/exporters/test_export.py (the repository's, Aug 2026) expects `DynamoExporter().export(...)` to return
    # a torch ExportedProgram (`.module()`); in 5.24 it returns an `ExportedModel` whose program is `.program`.
    from transformers.exporters.base import ExportedModel

    if not hasattr(ExportedModel, "module"):
        ExportedModel.module = lambda self: self.program.module()


def pytest_addoption(parser):
    from transformers.testing_utils import pytest_addoption_shared

    pytest_addoption_shared(parser)


def pytest_report_header(config):
    import importlib.util

    model_dir = os.environ.get("TINYGPT_MODEL_DIR")
    if model_dir:
        where = os.path.join(os.path.abspath(model_dir), "modeling_tinygpt.py")
    else:
        where = importlib.util.find_spec("tinygpt").submodule_search_locations[0] + "/modeling_tinygpt.py"
    return f"tinygpt under test: {where}  block_size={os.environ.get('TINYGPT_BLOCK_SIZE', '64')}"
