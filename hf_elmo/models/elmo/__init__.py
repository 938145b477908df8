"""ELMo: configuration, tokenizer and models (self-contained: torch, transformers and siblings only)."""

from .configuration_elmo import ElmoConfig
from .modeling_elmo import (
    ElmoForLanguageModeling,
    ElmoForSequenceClassification,
    ElmoForTokenClassification,
    ElmoModel,
    ElmoPreTrainedModel,
)
from .tokenization_elmo import ElmoTokenizer, split_words, word_to_char_ids
from .tokenization_elmoformanylangs import ElmoForManyLangsTokenizer

__all__ = [
    "ElmoConfig",
    "ElmoForLanguageModeling",
    "ElmoForManyLangsTokenizer",
    "ElmoForSequenceClassification",
    "ElmoForTokenClassification",
    "ElmoModel",
    "ElmoPreTrainedModel",
    "ElmoTokenizer",
    "split_words",
    "word_to_char_ids",
]
