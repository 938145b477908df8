"""Converters from the original checkpoints' file formats to save_pretrained folders (kept apart from the models)."""
