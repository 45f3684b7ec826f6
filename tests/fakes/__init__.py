"""Fakes that speak real protocols on loopback, for contract tests (the scripted OpenAI-protocol server
is shared with the benchmarks: `exporter/fake_openai.py`)."""
