"""One folder per model family, each laid out as transformers lays out its models."""
