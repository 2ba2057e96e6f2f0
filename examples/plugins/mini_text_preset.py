"""A tower preset: a two-layer, 64-wide BERT (an architecture built offline from this config; weights random).

Install with MMBENCH_PLUGINS=mini_text_preset; suites then name `text: {preset: bert-mini-2l}`.
"""

from benchmark.models.presets_registry import TowerPreset, register_preset

register_preset(
    TowerPreset(
        name="bert-mini-2l",
        modality="text",
        model_type="bert",
        shape_of="a two-layer BERT for quick experiments",
        config={
            "vocab_size": 30522,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "max_position_embeddings": 128,
        },
    )
)
