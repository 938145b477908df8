"""Model cards (README.md) for converted, trained and exported checkpoints, rendered from the templates in
``hf_elmo.model_cards``, one module per family.

The card is built with huggingface_hub's ``ModelCard.from_template`` so that its YAML metadata is the Hub's own
(validated ``ModelCardData``) and the body is a Jinja template kept beside the package as ordinary Markdown.
The templates are located through ``importlib.resources`` so that they are found in a wheel as in a checkout.

* ``common``: what every card shares (the usage snippet's target, the versions, the label list, the "Training" and
  "Results" sections of a model trained here: ``TrainingReport``), and ``OnnxCardFamily``;
* ``elmo``, ``awd_lstm``: each family's cards and the tables its ONNX exports' cards read;
* ``onnx``: the card of an ONNX export, for any family registered in ``ONNX_FAMILIES``.
"""

from .awd_lstm import AWD_LSTM_KINDS, AWD_LSTM_TEMPLATE, awd_lstm_card_data, render_awd_lstm_card
from .common import TRAINING_TEMPLATE, OnnxCardFamily, TrainingReport
from .elmo import ELMO_TEMPLATE, elmo_card_data, render_elmo_card
from .onnx import ONNX_FAMILIES, ONNX_TEMPLATES, onnx_card_data, render_onnx_card

__all__ = [
    "AWD_LSTM_KINDS",
    "AWD_LSTM_TEMPLATE",
    "ELMO_TEMPLATE",
    "ONNX_FAMILIES",
    "ONNX_TEMPLATES",
    "OnnxCardFamily",
    "TRAINING_TEMPLATE",
    "TrainingReport",
    "awd_lstm_card_data",
    "elmo_card_data",
    "onnx_card_data",
    "render_awd_lstm_card",
    "render_elmo_card",
    "render_onnx_card",
]
