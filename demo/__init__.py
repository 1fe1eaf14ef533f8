"""The Gradio demo (demo/app.py). Analytics are switched off before any demo module imports gradio."""

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
