"""tasr: speech recognition with truncated self-attention (the application: CLI, data, training, transcription)."""

__version__ = "0.1.0"
