"""The fine-tuning service: jobs API, executor and model registry on top of the library (issue 16)."""
