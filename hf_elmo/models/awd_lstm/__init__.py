"""AWD-LSTM / ULMFiT (self-contained: torch, transformers and siblings only)."""

from .tokenization_awd_lstm import AWDLSTMTokenizer
from .configuration_awd_lstm import AWDLSTMConfig
from .modeling_awd_lstm import (
    AWDLSTMForLanguageModeling,
    AWDLSTMForSequenceClassification,
    AWDLSTMModel,
    AWDLSTMPreTrainedModel,
)
