"""phase1b-kedro: find where a fine-tuned LLM fails and plan targeted training data."""

__version__ = "0.1.0"
