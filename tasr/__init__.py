"""tasr: speech recognition with truncated self-attention.

    import tasr
    model = tasr.load_model("exp/model.pt", device="auto")   # a tasr.SpeechRecognizer, in eval mode
    result = model.transcribe("talk.flac", beam=10)           # tasr.Result: text, words, segments
    for partial in model.stream(chunks_of_samples): ...       # partial Results, then the final one

The names below are loaded when first used, so that `import tasr` (and the `tasr` command's
start, which sets torch's thread policy first) does not import torch.
"""

import importlib

__version__ = "0.1.0"

# name -> module that defines it
API = {
    "load_model": "tasr.model", "SpeechRecognizer": "tasr.model",
    "Result": "tasr.transcription", "Transcriber": "tasr.transcription", "transcribe": "tasr.transcription",
    "stream": "tasr.transcription", "DecodingOptions": "tasr.decoding", "make_decoder": "tasr.decoding",
    "score": "tasr.scoring", "Word": "tasr.timestamps", "Segment": "tasr.subtitles", "TasrError": "tasr.errors",
}
__all__ = [*API, "__version__"]


def __getattr__(name):
    if name not in API:
        raise AttributeError(f"module 'tasr' has no attribute {name!r}")
    return getattr(importlib.import_module(API[name]), name)
