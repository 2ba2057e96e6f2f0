"""The result row: one per cell, an explicit Arrow schema. Every column is present in every row."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from benchmark import SCHEMA_VERSION

EVAL_KS = (5, 10, 20)
SPLITS = ("valid", "test")


BASELINES = ("pop", "random")


def metric_columns() -> list[str]:
    """valid_/test_ metrics of the model, and pop_test_/random_test_ metrics of the baselines."""
    names = []
    for prefix in (*SPLITS, *(f"{baseline}_test" for baseline in BASELINES)):
        for k in EVAL_KS:
            names += [f"{prefix}_hr@{k}", f"{prefix}_ndcg@{k}"]
        names.append(f"{prefix}_mrr")
    return names


_F, _I, _S, _B = pa.float64(), pa.int64(), pa.string(), pa.bool_()
_FLOATS = pa.list_(pa.float64())

FIELDS: list[tuple[str, pa.DataType]] = [
    ("schema_version", pa.int32()),
    ("suite", _S),
    ("run_id", _S),
    ("cell_id", _S),
    ("config_hash", _S),
    ("config_id", _S),
    ("config_json", _S),
    ("status", _S),
    ("error", _S),
    ("warnings", pa.list_(pa.string())),
    # what was compared
    ("dataset", _S),
    ("towers", _S),
    # JSON {modality: preset}, every modality of the tower set (schema 6). The reader spreads it into one
    # `<modality>_tower` column per modality the rows have (read.with_tower_columns): columns follow the modality
    # registry, plug-ins' included, instead of a fixed list.
    ("tower_presets", _S),
    # JSON {modality: weights}: 'random', a local directory, or a Hub id with the commit it resolved to (id@commit).
    ("tower_weights", _S),
    ("method", _S),
    ("method_label", _S),
    ("gradient_checkpointing", _S),  # non-reentrant | reentrant | null (schema 7)
    ("base_precision", _S),  # nf4 | int8: the towers' linear layers quantized (QLoRA); null: as stored
    ("precision", _S),
    ("batch_size", _I),
    ("max_seq_len", _I),
    ("seed", _I),
    ("repeat", _I),
    ("n_items", _I),
    ("n_train_sequences", _I),
    ("dropped_sequences", _I),
    # parameters
    ("trainable_params", _I),
    ("total_params", _I),
    ("trainable_pct", _F),
    # time
    ("step_ms", _FLOATS),
    ("step_ms_median", _F),
    ("step_ms_p10", _F),
    ("step_ms_p90", _F),
    ("warmup_steps", _I),
    ("warmup_ms", _FLOATS),
    ("measured_steps", _I),
    ("steps_per_epoch", _I),
    ("epoch_s", _F),
    ("epoch_kind", _S),
    ("epoch_s_samples", _FLOATS),
    ("epochs_run", _I),
    ("epochs_trained", _F),
    # data path: how long each step waited for its batch (worker processes prepare batches ahead)
    ("num_workers", _I),
    ("data_wait_ms", _FLOATS),
    ("data_wait_s_per_epoch", _F),
    ("data_share", _F),
    # cache: built for this cell by the launcher, reused from this machine, or reused from other hardware
    ("cache_build_s", _F),
    ("cache_bytes", _I),
    ("cache_origin", _S),
    ("cache_built_on", _S),
    ("amortized_over_epochs", _F),
    ("epoch_amortized_s", _F),
    ("samples_per_s", _F),
    ("items_per_s", _F),
    ("tokens_per_s", _F),
    ("step_items_median", _F),
    # work per step (FLOPs counted on one untimed forward + backward of the first batch) and how fast it ran
    ("flops_per_step", _I),
    ("flops_tower", _I),
    ("flops_side", _I),
    ("flops_user", _I),
    ("flops_other", _I),
    ("flops_step_items", _I),
    ("tflops_per_s", _F),
    ("peak_tflops", _F),
    ("peak_tflops_source", _S),
    ("mfu", _F),
    # operators of one step (counted on the last warm-up step): kernels launched, casts among them, host syncs
    ("step_kernels", _I),
    ("step_casts", _I),
    ("step_syncs", _I),
    ("step_sync_ops", _S),
    # torch.compile: compile time is kept out of the measured steps
    ("compiled", _B),
    ("compile_backend", _S),
    ("compile_mode", _S),
    ("cuda_graphs", _B),
    ("compile_s", _F),
    ("compile_steps", _I),
    ("train_loss", _FLOATS),
    ("final_loss", _F),
    ("eval_s", _F),
    ("setup_s", _F),
    ("best_epoch", _I),
    # time to accuracy: validation NDCG@10 against training time (evaluation excluded)
    ("valid_ndcg10_curve", _FLOATS),
    ("valid_train_s_curve", _FLOATS),
    ("tta_fraction", _F),
    ("tta_s", _F),
    ("tta_incl_cache_s", _F),
    ("stopped_early", _B),
    # memory
    ("torch_peak_alloc_gib", _F),
    ("torch_peak_reserved_gib", _F),
    ("nvml_peak_process_gib", _F),
    ("nvml_peak_device_gib", _F),
    ("nvml_baseline_gib", _F),
    ("nvml_samples", _I),
    ("nvml_hz", _F),
    ("cpu_peak_rss_gib", _F),
    ("peak_mem_gib", _F),
    ("peak_mem_source", _S),
    ("eval_peak_alloc_gib", _F),
    ("eval_peak_reserved_gib", _F),
    ("eval_peak_rss_gib", _F),
    # where the static memory goes (bytes, counted from the tensors after the first step)
    ("weights_trainable_bytes", _I),
    ("weights_frozen_bytes", _I),
    ("gradient_bytes", _I),
    ("optimizer_state_bytes", _I),
    # and the dynamic parts: activations saved for backward (counted), and on CUDA the peak's activations and
    # temporaries, the allocator's slack and the CUDA context (from the allocator and NVML peaks)
    ("activation_saved_bytes", _I),
    ("activation_peak_bytes", _I),
    ("allocator_slack_bytes", _I),
    ("cuda_context_bytes", _I),
    # what `mmbench estimate` predicted before the cell ran (the launcher's prediction, on the device it ran on):
    # the process's peak as NVML shows it, torch's allocated and reserved peaks, the parts of the peak (JSON, bytes),
    # the step and epoch time, whether it fitted, and what calibrated it
    ("predicted_on", _S),
    ("predicted_fits", _S),
    ("predicted_peak_process_gib", _F),
    ("predicted_peak_alloc_gib", _F),
    ("predicted_peak_reserved_gib", _F),
    ("predicted_parts", _S),
    ("predicted_step_ms", _F),
    ("predicted_epoch_s", _F),
    ("predicted_calibration", _S),
    # energy
    ("energy_j_per_epoch", _F),
    ("energy_j_measured", _F),
    # accuracy
    *[(name, _F) for name in metric_columns()],
    # provenance
    ("mmbench_version", _S),
    ("git_sha", _S),
    ("git_dirty", _B),
    ("package_versions", _S),
    ("python_version", _S),
    ("torch_version", _S),
    ("cuda_version", _S),
    ("driver_version", _S),
    ("device", _S),
    ("gpu_name", _S),
    ("gpu_uuid", _S),
    ("gpu_memory_gib", _F),
    ("mig_mode", _S),
    ("nvml_available", _B),
    ("nvml_device_match", _S),
    # contention: what else ran while the cell trained
    ("device_lock", _S),
    ("contended", _B),
    ("contention", _S),
    ("other_gpu_processes", _I),
    ("other_busy_cores", _F),
    ("load_avg_1m", _F),
    # one cell on several ranks (train.distributed; schema 7): the ranks, the strategy (ddp | fsdp; null: one
    # process), the backend, each rank's device (JSON list), each rank's peak memory and median step; the row's
    # peak_mem_gib is the largest rank's, step_ms each step's slowest rank's, energy the sum over the ranks' GPUs.
    # failed_rank: the rank where a failed distributed cell failed first.
    ("world_size", _I),
    ("distributed", _S),
    ("dist_backend", _S),
    ("rank_devices", _S),
    ("rank_peak_mem_gib", _FLOATS),
    ("rank_torch_peak_alloc_gib", _FLOATS),
    ("rank_step_ms_median", _FLOATS),
    ("comm_share", _F),
    ("failed_rank", _I),
    # placement: which launcher ran the cell, on which pooled device, in which SLURM job, on which node
    ("launcher", _S),
    ("assigned_device", _S),
    ("slurm_job_id", _S),
    ("node", _S),
    ("host", _S),
    ("platform", _S),
    ("cpu", _S),
    ("cpu_count", _I),
    ("start_time", pa.timestamp("us", tz="UTC")),
    ("end_time", pa.timestamp("us", tz="UTC")),
]

RESULT_SCHEMA = pa.schema(
    [pa.field(name, dtype, nullable=True) for name, dtype in FIELDS], metadata={"schema_version": str(SCHEMA_VERSION)}
)
COLUMNS = [name for name, _ in FIELDS]
# skipped: not run on this machine by design, with the reason in `error` (a quantized base without a CUDA GPU).
STATUSES = ("ok", "oom", "error", "crashed", "timeout", "skipped", "predicted_oom")
OUT_OF_MEMORY = ("oom", "predicted_oom")  # ran out of memory, or was predicted to by a clear margin and not run
# The columns every mmbench row has a value in: a Parquet file without them is not a result row.
IDENTITY_COLUMNS = ("cell_id", "status", "schema_version")


# Schema 6 and older wrote one column per built-in modality; a reader folds them into `tower_presets`.
LEGACY_TOWER_COLUMNS = {"text_tower": "text", "image_tower": "image", "video_tower": "video", "audio_tower": "audio"}


def tower_column(modality: str) -> str:
    return f"{modality}_tower"


def legacy_tower_presets(columns: dict[str, str | None]) -> str | None:
    """`tower_presets` of a row written before schema 7, from its `<modality>_tower` columns (None: none set)."""
    presets = {LEGACY_TOWER_COLUMNS[name]: preset for name, preset in columns.items() if preset is not None}
    return json.dumps(presets) if presets else None


def empty_row() -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in COLUMNS}
    row["schema_version"] = SCHEMA_VERSION
    return row


def row_to_table(row: dict[str, Any]) -> pa.Table:
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"result row has columns outside the schema: {sorted(unknown)}")
    complete = {**empty_row(), **row}
    if complete["status"] not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {complete['status']!r}")
    return pa.Table.from_pylist([complete], schema=RESULT_SCHEMA)
