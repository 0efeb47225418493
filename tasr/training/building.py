"""The pieces a training run builds from its config: the tokenizer and the model."""

from tasr import audio
from tasr import text
from tasr.errors import TasrError
from tasr.model import SpeechRecognizer


def build_tokenizer(setting, texts, given_path=None):
    """A tokenizer: the file given on the command line, a path in the config, or trained on `texts`."""
    path = given_path or (setting if isinstance(setting, str) else None)
    if path:
        return text.load_tokenizer(path)
    return text.train_tokenizer(texts, kind=setting.get("kind", "char"),
                                vocab_size=int(setting.get("vocab_size", 500)),
                                lowercase=bool(setting.get("lowercase", False)))


def build_model(config: dict, tokenizer, cmvn_state: dict | None = None):
    """A SpeechRecognizer from the `model` section, the tokenizer and CMVN statistics (state_dict or None)."""
    try:
        cmvn = audio.GlobalCMVN.from_state_dict(cmvn_state) if cmvn_state is not None else None
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise TasrError(f"the checkpoint's CMVN statistics are not readable ({' '.join(str(error).split())})") from None
    try:
        return SpeechRecognizer(config["model"], tokenizer, cmvn)
    except (TypeError, ValueError, KeyError) as error:
        raise TasrError(f"model settings: {error}") from None
