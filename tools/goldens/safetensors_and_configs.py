#!/usr/bin/env python3
"""Oracle for the safetensors reader and the HF config.json parser.

Writes, re-runnably:
  tests/goldens/safetensors/  files written by the `safetensors` package (one tensor per supported
                              dtype, a scalar, an empty tensor, __metadata__, one unsupported dtype,
                              a two-shard checkpoint with its index) plus expected.json listing every
                              tensor's dtype, shape and values as the package reads them back.
  tests/corpus/safetensors-malformed/
                              hostile files built byte by byte, each with the phrase the C++
                              reader's error must contain (EXPECTED.json).
  tests/goldens/configs/      tiny config.json files written by transformers' own config classes
                              (current `rope_parameters` format) and hub-style ones in the older
                              format (`rope_theta`, `rope_scaling`, `sliding_window_pattern`), each
                              with <name>.expected.json: the values transformers derives from it.
                              Family-implied features (q/k norm, sinks, biases, (1+w) norms,
                              embedding scale) are read off a model instantiated from the config.

Usage: .venv/bin/python tools/goldens/safetensors_and_configs.py
Check a C++-written file: .venv/bin/python tools/goldens/safetensors_and_configs.py --check FILE
"""
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
ST_DIR = ROOT / "tests/goldens/safetensors"
CORPUS_DIR = ROOT / "tests/corpus/safetensors-malformed"
CFG_DIR = ROOT / "tests/goldens/configs"


# ---------------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------------

def tensor_values(dtype, shape):
    """Deterministic, exactly representable values (multiples of 1/4, small ints)."""
    count = int(np.prod(shape)) if shape else 1
    i = np.arange(count, dtype=np.int64)
    if dtype in ("float32", "float16", "bfloat16"):
        values = (i - count // 2) * 0.25
    elif dtype == "uint8":
        values = (i * 37) % 256
    elif dtype == "int8":
        values = (i * 37) % 256 - 128
    elif dtype == "int32":
        values = i * 100003 - 2_000_000_000 // (count + 1)
    else:  # int64: values beyond 32 bits
        values = i * 4_000_000_007 - 9_000_000_000_000_000_000 // (count + 1)
    return values.reshape(shape)


def write_safetensors_goldens():
    import torch
    from safetensors.torch import save_file

    ST_DIR.mkdir(parents=True, exist_ok=True)
    torch_types = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                   "int8": torch.int8, "uint8": torch.uint8, "int32": torch.int32, "int64": torch.int64}
    st_names = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "int8": "I8", "uint8": "U8",
                "int32": "I32", "int64": "I64"}

    def make(spec):
        out = {}
        for name, dtype, shape in spec:
            values = tensor_values(dtype, shape)
            out[name] = torch.tensor(values.tolist() if shape else values.item(), dtype=torch_types[dtype])
        return out

    def describe(path, spec):
        # Read back with the package itself: the expectation is what the reference reader sees.
        loaded = {}
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():
                loaded[name] = f.get_tensor(name)
        result = {}
        for name, dtype, shape in spec:
            t = loaded[name]
            assert list(t.shape) == list(shape), name
            result[name] = {"dtype": st_names[dtype], "shape": list(shape),
                            "values": t.to(torch.float64 if dtype in ("float32", "float16", "bfloat16")
                                           else torch.int64).flatten().tolist()}
        return result

    expected = {}
    all_dtypes = [
        ("f32.matrix", "float32", (3, 4)),
        ("f16.vector", "float16", (7,)),
        ("bf16.cube", "bfloat16", (2, 3, 2)),
        ("i8.vector", "int8", (9,)),
        ("u8.vector", "uint8", (10,)),
        ("i32.matrix", "int32", (2, 5)),
        ("i64.vector", "int64", (4,)),
        ("scalar", "float32", ()),
        ("empty", "float32", (2, 0)),
    ]
    path = ST_DIR / "all_dtypes.safetensors"
    save_file(make(all_dtypes), str(path), metadata={"format": "pt", "note": "kindred golden"})
    expected["all_dtypes.safetensors"] = {"metadata": {"format": "pt", "note": "kindred golden"},
                                          "tensors": describe(path, all_dtypes)}

    # A dtype the reader refuses (F64) next to one it accepts.
    save_file({"ok": torch.zeros(2), "wide": torch.zeros(3, dtype=torch.float64)},
              str(ST_DIR / "unsupported_f64.safetensors"))

    # Two shards plus the index transformers writes for them.
    shard_dir = ST_DIR / "sharded"
    shard_dir.mkdir(exist_ok=True)
    shards = {
        "model-00001-of-00002.safetensors": [("embed.weight", "float32", (6, 4)),
                                             ("layers.0.norm", "bfloat16", (4,))],
        "model-00002-of-00002.safetensors": [("layers.0.proj", "float16", (4, 4)),
                                             ("head.bias", "float32", (6,))],
    }
    weight_map, total, sharded_expected = {}, 0, {}
    for file_name, spec in shards.items():
        tensors = make(spec)
        save_file(tensors, str(shard_dir / file_name), metadata={"format": "pt"})
        for name, t in tensors.items():
            weight_map[name] = file_name
            total += t.numel() * t.element_size()
        sharded_expected.update(describe(shard_dir / file_name, spec))
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (shard_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    expected["sharded"] = {"tensors": sharded_expected}

    (ST_DIR / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    for written in ST_DIR.rglob("*.safetensors"):  # the package creates them 0600
        written.chmod(0o644)


def raw_file(header, data=b"", length=None):
    """A safetensors file from header text (str) and data bytes; `length` overrides the prefix."""
    text = header.encode() if isinstance(header, str) else header
    n = len(text) if length is None else length
    return n.to_bytes(8, "little") + text + data


def write_malformed_corpus():
    t = lambda dtype, shape, begin, end: {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
    h = lambda **tensors: json.dumps(tensors)
    cases = {
        "empty_file": (b"", "too short"),
        "short_length": (b"\x05\x00\x00", "too short"),
        "length_past_end": (raw_file("{}", length=1000), "runs past the end"),
        "length_absurd": (raw_file("{}", length=2**63), "exceeds the"),
        "not_json": (raw_file("{hello"), "invalid JSON"),
        "trailing_garbage": (raw_file('{} x'), "invalid JSON"),
        "invalid_utf8": (raw_file(b'{"\xff\xfe": 1}'), "invalid JSON"),
        "top_level_array": (raw_file("[1, 2]"), "not a JSON object"),
        "too_deep": (raw_file('{"a": {"b": {"c": {}}}}'), "nested deeper"),
        "entry_not_object": (raw_file('{"w": 5}'), "entry is not an object"),
        "missing_dtype": (raw_file(json.dumps({"w": {"shape": [1], "data_offsets": [0, 4]}}), bytes(4)),
                          "missing 'dtype'"),
        "missing_shape": (raw_file(json.dumps({"w": {"dtype": "F32", "data_offsets": [0, 4]}}), bytes(4)),
                          "missing 'shape'"),
        "missing_offsets": (raw_file(json.dumps({"w": {"dtype": "F32", "shape": [1]}}), bytes(4)),
                            "missing 'data_offsets'"),
        "dtype_number": (raw_file(h(w=t(7, [1], 0, 4)), bytes(4)), "'dtype' is not a string"),
        "dtype_unknown": (raw_file(h(w=t("F8_E4M3", [1], 0, 1)), bytes(1)), "dtype 'F8_E4M3'"),
        "dtype_quantized": (raw_file(h(w=t("Q4_0", [32], 0, 18)), bytes(18)), "dtype 'Q4_0'"),
        "shape_string": (raw_file(h(w=t("F32", "4", 0, 16)), bytes(16)), "'shape' is not an array"),
        "shape_negative": (raw_file(h(w=t("F32", [-1], 0, 4)), bytes(4)), "non-negative integer"),
        "shape_float": (raw_file(h(w=t("F32", [1.5], 0, 4)), bytes(4)), "non-negative integer"),
        "shape_overflow": (raw_file(h(w=t("F32", [2**32, 2**32, 2], 0, 4)), bytes(4)),
                           "more elements than 64 bits"),
        "shape_bytes_overflow": (raw_file(h(w=t("I64", [2**62], 0, 8)), bytes(8)), "too large to address"),
        "offsets_single": (raw_file(json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}),
                                    bytes(4)), "not a [begin, end] pair"),
        "offsets_negative": (raw_file(h(w=t("F32", [1], -4, 0)), bytes(4)), "non-negative integer"),
        "offsets_backwards": (raw_file(h(w=t("F32", [1], 4, 0)), bytes(4)), "run backwards"),
        "offsets_past_buffer": (raw_file(h(w=t("F32", [2], 0, 8)), bytes(4)), "run past the 4 byte data buffer"),
        "offsets_huge": (raw_file(h(w=t("F32", [1], 2**64 - 8, 2**64 - 4)), bytes(4)), "run past"),
        "size_mismatch": (raw_file(h(w=t("F32", [2], 0, 4)), bytes(4)), "needs 8"),
        "overlap": (raw_file(h(a=t("F32", [2], 0, 8), b=t("F32", [1], 4, 8)), bytes(8)), "overlaps"),
        "hole": (raw_file(h(a=t("F32", [1], 0, 4), b=t("F32", [1], 8, 12)), bytes(12)), "belong to no tensor"),
        "hole_at_start": (raw_file(h(a=t("F32", [1], 4, 8)), bytes(8)), "belong to no tensor"),
        "trailing_bytes": (raw_file(h(a=t("F32", [1], 0, 4)), bytes(8)), "at the end of the data buffer"),
        "duplicate_name": (raw_file('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                                    '"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', bytes(8)),
                           "key 'w' appears twice"),
        "duplicate_field": (raw_file('{"w": {"dtype": "F32", "dtype": "F16", "shape": [1], '
                                     '"data_offsets": [0, 4]}}', bytes(4)), "key 'dtype' appears twice"),
        "metadata_not_object": (raw_file('{"__metadata__": "x"}'), "__metadata__ is not an object"),
        "metadata_value_number": (raw_file('{"__metadata__": {"k": 1}}'), "__metadata__ 'k' is not a string"),
    }
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    for old in CORPUS_DIR.glob("*.safetensors"):
        old.unlink()
    expected = {}
    for name, (data, phrase) in cases.items():
        (CORPUS_DIR / f"{name}.safetensors").write_bytes(data)
        expected[f"{name}.safetensors"] = phrase
    (CORPUS_DIR / "EXPECTED.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


def check_cpp_file(path):
    """Loads a file written by the C++ writer with the reference package and prints it."""
    from safetensors import safe_open
    from safetensors.numpy import load_file
    try:
        arrays = load_file(path)
        for name, a in arrays.items():
            print(f"{name}: {a.dtype} {list(a.shape)} {a.flatten()[:8].tolist()}")
    except TypeError as error:  # numpy has no bfloat16; fall back to torch for such files
        print(f"numpy: {error}; reading with torch")
    with safe_open(path, framework="pt") as f:
        print("metadata:", f.metadata())
        for name in f.keys():
            t = f.get_tensor(name)
            print(f"{name}: {t.dtype} {list(t.shape)} {t.flatten()[:8].tolist()}")


# ---------------------------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------------------------

def rope_summary(params, max_position_embeddings):
    """Our RopeScaling view of one transformers rope_parameters dict."""
    rope_type = params.get("rope_type", params.get("type", "default"))
    out = {"theta": params["rope_theta"], "type": rope_type}
    if rope_type == "linear":
        out["factor"] = params["factor"]
    elif rope_type == "llama3":
        out.update(factor=params["factor"], low_freq_factor=params["low_freq_factor"],
                   high_freq_factor=params["high_freq_factor"],
                   original_max_position_embeddings=params["original_max_position_embeddings"])
    elif rope_type == "yarn":
        out.update(factor=params["factor"], beta_fast=params.get("beta_fast") or 32.0,
                   beta_slow=params.get("beta_slow") or 1.0, truncate=params.get("truncate", True),
                   attention_factor=params.get("attention_factor") or 0.0,
                   original_max_position_embeddings=params.get("original_max_position_embeddings")
                   or max_position_embeddings)
    else:
        assert rope_type == "default", rope_type
        out["type"] = "none"
    return out


def family_features(config):
    """Reads family-implied features off a tiny model built from the config (CPU, random init)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    inner = model.model
    attn = inner.layers[0].self_attn
    with torch.no_grad():
        norm = inner.norm
        norm.weight.zero_()
        zeroed = norm(torch.ones(1, config.hidden_size)).abs().max().item()
    return {
        "qk_norm": hasattr(attn, "q_norm"),
        "attention_sinks": hasattr(attn, "sinks"),
        "attention_bias": attn.q_proj.bias is not None,
        # (1 + w) norms still pass the input through when w is zero.
        "norm_weight_offset": zeroed > 0.5,
        "scale_embeddings": getattr(inner.embed_tokens, "embed_scale", None) is not None,
        "attention_scale": attn.scaling,
    }


def summarize(config, features):
    text = config.get_text_config()
    n = text.num_hidden_layers
    layer_types = list(getattr(text, "layer_types", None) or ["full_attention"] * n)
    rope = text.rope_parameters
    if "full_attention" in rope and isinstance(rope["full_attention"], dict):
        full = rope_summary(rope["full_attention"], text.max_position_embeddings)
        local = rope["sliding_attention"]["rope_theta"] if "sliding_attention" in rope else 0.0
    else:
        full = rope_summary(rope, text.max_position_embeddings)
        local = 0.0
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    sliding = "sliding_attention" in layer_types
    act = getattr(text, "hidden_activation", None) or text.hidden_act
    summary = {
        "model_type": text.model_type,
        "vocab_size": text.vocab_size,
        "hidden_size": text.hidden_size,
        "intermediate_size": text.intermediate_size,
        "num_layers": n,
        "num_heads": text.num_attention_heads,
        "num_kv_heads": text.num_key_value_heads,
        "head_dim": head_dim,
        "context_length": text.max_position_embeddings,
        "rms_norm_eps": text.rms_norm_eps,
        "rope_theta": full.pop("theta"),
        "rope_local_theta": local,
        "rope_scaling": full,
        "tie_word_embeddings": bool(config.tie_word_embeddings),
        "activation": {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh"}[act],
        "swiglu_limit": getattr(text, "swiglu_limit", 0.0) if text.model_type == "gpt_oss" else 0.0,
        "swiglu_alpha": getattr(text, "swiglu_alpha", 0.0) if text.model_type == "gpt_oss" else 0.0,
        "num_experts": getattr(text, "num_local_experts", None) or getattr(text, "num_experts", 0) or 0,
        "num_experts_per_token": getattr(text, "num_experts_per_tok", 0) or 0,
        # gpt-oss experts are intermediate_size wide; ModelConfig keeps the expert width in one field.
        "moe_intermediate_size": getattr(text, "moe_intermediate_size", 0)
        or (text.intermediate_size if text.model_type == "gpt_oss" else 0),
        # gpt-oss takes the softmax over the selected logits, which equals normalising the top-k.
        "norm_topk_prob": bool(getattr(text, "norm_topk_prob", text.model_type == "gpt_oss")),
        "sliding_window": text.sliding_window if sliding else 0,
        "layer_types": ["sliding" if t == "sliding_attention" else "full" for t in layer_types],
        "query_pre_attn_scalar": float(getattr(text, "query_pre_attn_scalar", 0.0) or 0.0),
        "final_logit_softcapping": float(getattr(text, "final_logit_softcapping", 0.0) or 0.0),
    }
    summary.update(features)
    return summary


def tiny_configs():
    from transformers import (Gemma3TextConfig, GptOssConfig, LlamaConfig, Qwen3Config,
                              Qwen3MoeConfig)
    return {
        "llama_tiny": LlamaConfig(
            vocab_size=96, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
            num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=512,
            rms_norm_eps=1e-5, tie_word_embeddings=True,
            rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 128}),
        "qwen3_tiny": Qwen3Config(
            vocab_size=96, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=1024,
            rope_parameters={"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
                             "original_max_position_embeddings": 256}),
        "qwen3_moe_tiny": Qwen3MoeConfig(
            vocab_size=96, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, num_experts=8,
            num_experts_per_tok=2, norm_topk_prob=True, max_position_embeddings=256),
        "gpt_oss_tiny": GptOssConfig(
            vocab_size=96, hidden_size=32, intermediate_size=16, num_hidden_layers=4, head_dim=8,
            num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
            num_experts_per_tok=2, sliding_window=16),
        "gemma3_text_tiny": Gemma3TextConfig(
            vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=7, head_dim=16,
            num_attention_heads=2, num_key_value_heads=1, sliding_window=32, query_pre_attn_scalar=16,
            final_logit_softcapping=30.0,
            rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0,
                                                "rope_theta": 1000000.0},
                             "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}),
    }


# Hub-style configs in the older format (values as published, sizes real or shrunk).
LEGACY_CONFIGS = {
    # Matches the default model (SmolLM2-135M-Instruct), so tests can compare with its GGUF.
    "smollm2_135m": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 49152,
        "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "rope_theta": 100000, "rope_scaling": None, "tie_word_embeddings": True,
        "hidden_act": "silu", "attention_bias": False, "torch_dtype": "bfloat16",
    },
    "qwen3_0_6b": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
        "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "max_position_embeddings": 40960, "max_window_layers": 28, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000, "rope_scaling": None, "sliding_window": None,
        "use_sliding_window": False, "tie_word_embeddings": True, "hidden_act": "silu",
        "attention_bias": False,
    },
    # No head_dim: derived from hidden_size / heads.
    "qwen3_moe_small": {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": 1000,
        "hidden_size": 256, "intermediate_size": 768, "moe_intermediate_size": 64,
        "num_hidden_layers": 3, "num_attention_heads": 8, "num_key_value_heads": 4,
        "num_experts": 16, "num_experts_per_tok": 4, "norm_topk_prob": True,
        "decoder_sparse_step": 1, "mlp_only_layers": [], "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_scaling": None,
        "tie_word_embeddings": False, "hidden_act": "silu",
    },
    "gpt_oss_20b": {
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "vocab_size": 201088,
        "hidden_size": 2880, "intermediate_size": 2880, "num_hidden_layers": 24, "head_dim": 64,
        "num_attention_heads": 64, "num_key_value_heads": 8, "num_local_experts": 32,
        "num_experts_per_tok": 4, "experts_per_token": 4, "sliding_window": 128,
        "max_position_embeddings": 131072, "initial_context_length": 4096, "rms_norm_eps": 1e-5,
        "rope_theta": 150000, "swiglu_limit": 7.0, "attention_bias": True,
        "tie_word_embeddings": False, "hidden_act": "silu",
        "layer_types": ["sliding_attention", "full_attention"] * 12,
        "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                         "truncate": False, "original_max_position_embeddings": 4096},
    },
    # gemma-3-1b style: sliding_window_pattern, rope_local_base_freq, no layer_types.
    "gemma3_1b": {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": 262144,
        "hidden_size": 1152, "intermediate_size": 6912, "num_hidden_layers": 26, "head_dim": 256,
        "num_attention_heads": 4, "num_key_value_heads": 1, "max_position_embeddings": 32768,
        "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
        "rope_local_base_freq": 10000, "rope_scaling": None, "sliding_window": 512,
        "sliding_window_pattern": 6, "final_logit_softcapping": None,
        "attn_logit_softcapping": None, "hidden_activation": "gelu_pytorch_tanh",
    },
    # Multimodal gemma3 wrapper: the text model lives in text_config (shrunk sizes).
    "gemma3_multimodal": {
        "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "text_config": {
            "model_type": "gemma3_text", "vocab_size": 512, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 8, "head_dim": 32,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "query_pre_attn_scalar": 32, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0, "sliding_window": 1024, "sliding_window_pattern": 6,
            "rope_scaling": {"rope_type": "linear", "factor": 8.0},
        },
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32,
                          "intermediate_size": 64, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "image_size": 32, "patch_size": 16},
    },
}


def shrunk_for_features(config):
    """A copy small enough to instantiate: family features do not depend on sizes (head_dim is
    kept because the attention scale derives from it)."""
    text = config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    small = type(text).from_dict({**text.to_dict(), "vocab_size": 64, "hidden_size": 32,
                                  "intermediate_size": 32, "num_hidden_layers": 2,
                                  "num_attention_heads": 2, "num_key_value_heads": 1,
                                  "head_dim": head_dim, "moe_intermediate_size": 16,
                                  "layer_types": None})
    return small


def write_config_goldens():
    from transformers import AutoConfig

    CFG_DIR.mkdir(parents=True, exist_ok=True)
    for name, config in tiny_configs().items():
        config.to_json_file(str(CFG_DIR / f"{name}.json"), use_diff=True)
        reloaded = AutoConfig.from_pretrained(str(CFG_DIR / f"{name}.json"))
        summary = summarize(reloaded, family_features(reloaded))
        (CFG_DIR / f"{name}.expected.json").write_text(json.dumps(summary, indent=1) + "\n")
    for name, raw in LEGACY_CONFIGS.items():
        path = CFG_DIR / f"{name}.json"
        path.write_text(json.dumps(raw, indent=2) + "\n")
        loaded = AutoConfig.from_pretrained(str(path))
        summary = summarize(loaded, family_features(shrunk_for_features(loaded)))
        (CFG_DIR / f"{name}.expected.json").write_text(json.dumps(summary, indent=1) + "\n")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check_cpp_file(sys.argv[2])
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    write_safetensors_goldens()
    write_malformed_corpus()
    write_config_goldens()
    print("wrote", ST_DIR, CORPUS_DIR, CFG_DIR)


if __name__ == "__main__":
    main()
