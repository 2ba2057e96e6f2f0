"""Gradient checkpointing as an option of every end-to-end method: the step keeps fewer activations and does more
FLOPs (the recomputation), the row records the mode, and cells without it keep their configuration ids."""

from __future__ import annotations

import pytest

from benchmark.errors import SuiteError
from benchmark.plan.loader import load_suite
from benchmark.results.schema import empty_row
from benchmark.suite.matrix import config_id, expand_cells
from benchmark.train.loop import run_cell


def _row(write_suite, method: str) -> dict:
    config = expand_cells(load_suite(write_suite(methods=f"[{method}]", evaluate=False, max_steps=2)))[0].config
    row = empty_row()
    run_cell(config, row, lambda event: None)
    return row


@pytest.mark.parametrize("method", ["fft", "lora"])
def test_checkpointing_saves_fewer_activations_and_recomputes_the_forward(write_suite, method):
    plain = _row(write_suite, method)
    checkpointed = _row(write_suite, f"{{name: {method}, options: {{gradient_checkpointing: true}}}}")
    assert plain["status"] is None and plain["gradient_checkpointing"] is None  # status is set by the launcher
    assert checkpointed["gradient_checkpointing"] == "non-reentrant"
    assert checkpointed["activation_saved_bytes"] < plain["activation_saved_bytes"]
    assert checkpointed["flops_per_step"] > plain["flops_per_step"]
    assert checkpointed["trainable_params"] == plain["trainable_params"]  # the same method, trained the same way
    assert checkpointed["step_ms"] and checkpointed["final_loss"] is not None


def test_reentrant_checkpointing_still_trains_lora_behind_frozen_embeddings(write_suite):
    row = _row(write_suite, "{name: lora, options: {gradient_checkpointing: true, checkpoint_reentrant: true}}")
    assert row["gradient_checkpointing"] == "reentrant"
    losses = row["train_loss"]
    assert len(losses) == 2 and losses[0] != losses[1]  # LoRA's weights inside the checkpointed layers got gradients


def test_cells_without_checkpointing_keep_their_ids_and_the_option_is_typed(write_suite):
    before = expand_cells(load_suite(write_suite(methods="[fft, lora]")))
    explicit = expand_cells(
        load_suite(write_suite(methods="[{name: fft, options: {gradient_checkpointing: false}}, lora]"))
    )
    assert [config_id(c.config) for c in before] == [config_id(c.config) for c in explicit]
    with pytest.raises(SuiteError, match="gradient_checkpointing: expected bool"):
        load_suite(write_suite(methods="[{name: adapter, options: {gradient_checkpointing: maybe}}]"))
