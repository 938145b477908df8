"""The model card of an ONNX export (a folder written by ``hf_elmo.onnx.export_onnx``), for any family that
describes its exports with an ``OnnxCardFamily`` (``ONNX_FAMILIES``: model_type → the family's tables)."""

from __future__ import annotations

import os
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from ..version import __version__ as hf_elmo_version
from . import awd_lstm, elmo
from .common import OnnxCardFamily, from_template, labels_text, snippet_target

# model_type -> what its ONNX exports' card needs from the family
ONNX_FAMILIES: dict[str, OnnxCardFamily] = {"elmo": elmo.ONNX_CARD, "awd_lstm": awd_lstm.ONNX_CARD}
# model_type -> the card template of its ONNX exports
ONNX_TEMPLATES = {model_type: family.template for model_type, family in ONNX_FAMILIES.items()}

ONNX_DTYPES = {
    "float32": "float32",
    "float16": "float16 weights and activations (int64 inputs, float32 outputs)",
    "int8": "int8 weights of the matrix products (dynamic quantisation), float32 activations",
}


def onnx_card_data(onnx_info: dict[str, Any], pipeline_tag: str | None, model_type: str = "elmo",
                   base_model: str | None = None, license: str = "apache-2.0",
                   language: str | None = "en") -> ModelCardData:
    """The Hub metadata of an ONNX export's card: library ``onnx``, the task's pipeline, onnx/dtype tags."""
    task, dtype = onnx_info["task"], onnx_info.get("dtype", "float32")
    tags = ["onnx", "onnxruntime", model_type, "hf-elmo", task]
    family = ONNX_FAMILIES.get(model_type)
    tags += list(family.tags) if family else []
    tags += {"float16": ["fp16"], "int8": ["int8", "quantized"]}.get(dtype, [])
    return ModelCardData(
        library_name="onnx",
        license=license,
        language=language,
        tags=tags,
        pipeline_tag=pipeline_tag,
        base_model=base_model,
    )

def render_onnx_card(
    config: Any,
    onnx_info: dict[str, Any],
    repo_id_or_path: str | os.PathLike,
    *,
    model_name: str | None = None,
    revision: str | None = None,
    base_model: str | None = None,
    num_parameters: int | None = None,
    pipeline_tag: str | None = None,
    license: str = "apache-2.0",
    language: str | None = "en",
) -> ModelCard:
    """Renders the card of an ONNX export (a folder written by ``hf_elmo.onnx.export_onnx``).

    Args:
        config: the exported model's configuration.
        onnx_info: the ``onnx`` section export_onnx writes into config.json (task, file, dtype, inputs, outputs, ...).
        repo_id_or_path: what the usage snippets load: the Hub repository id, or the local folder.
        model_name: the card's title (default: "ELMo <what> (ONNX[, dtype])", "AWD-LSTM <what> (ONNX...)").
        revision: the branch the snippets should load, when not the default one.
        base_model: the Hub id of the PyTorch model it was exported from (metadata and a link).
        num_parameters: shown when given.
        pipeline_tag: the Hub pipeline of the task (None: none).
    """
    model_type = getattr(config, "model_type", None)
    if model_type not in ONNX_FAMILIES:
        raise ValueError(f"render_onnx_card: no ONNX card template for model type {model_type!r}")
    family = ONNX_FAMILIES[model_type]
    task = onnx_info["task"]
    tasks = family.tasks
    if task not in tasks:
        raise ValueError(f"render_onnx_card: unknown task {task!r} for {model_type!r}; one of {list(tasks)}")
    dtype = onnx_info.get("dtype", "float32")
    target = str(repo_id_or_path)
    is_repo = not os.path.exists(target) and not os.path.isabs(target) and target.count("/") <= 1
    what, outputs_text, hf_elmo_lines, ort_lines = tasks[task]
    dims, architecture = family.architecture(config)
    labels = labels_text(config) if task in ("text-classification", "token-classification") else None
    validation = dict(onnx_info.get("validation") or {})
    for key in ("float32_max_abs_diff", "max_abs_diff"):
        validation[key + "_text"] = f"{validation[key]:.2g}" if validation.get(key) is not None else "not measured"
    cos = validation.get("min_cosine_similarity")
    validation["min_cosine_similarity_text"] = f"{cos:.6f}" if cos is not None else "not measured"
    optimization = onnx_info.get("optimization")
    suffix = "" if dtype == "float32" else f", {dtype}"
    template_kwargs: dict[str, Any] = dict(
        model_name=model_name or f"{family.name} {what} (ONNX{suffix})",
        model_description=family.descriptions[task],
        base_model=base_model,
        task=task,
        model_class=onnx_info.get("model_class", "?"),
        file_name=onnx_info.get("file_name", "model.onnx"),
        external_data_file=onnx_info.get("external_data_file"),
        dtype=dtype,
        dtype_description=ONNX_DTYPES.get(dtype, dtype),
        opset=onnx_info.get("opset"),
        optimization=optimization,
        optimization_description=(
            f"ONNX Runtime \"{optimization['level']}\", for the {optimization['provider']}" if optimization
            else "none (ONNX Runtime optimises when it loads the model)"
        ),
        quantization=onnx_info.get("quantization"),
        inputs=onnx_info.get("inputs", []),
        outputs=onnx_info.get("outputs", []),
        outputs_description=outputs_text.format(**dims),
        hf_elmo_outputs=hf_elmo_lines.format(**dims),
        ort_outputs=ort_lines.format(**dims),
        **snippet_target(repo_id_or_path, revision),
        is_repo=is_repo,
        validation=validation,
        versions={"hf_elmo": hf_elmo_version, "torch": "?", "onnx": "?", "onnxruntime": "?",
                  **(onnx_info.get("versions") or {})},
        num_parameters=num_parameters,
        labels=labels,
        **architecture,
    )
    card_data = onnx_card_data(onnx_info, pipeline_tag, model_type=model_type, base_model=base_model,
                               license=license, language=language)
    return from_template(family.template, card_data, template_kwargs)
