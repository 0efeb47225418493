"""The one error type of the `audio` package."""


class AudioError(ValueError):
    """Audio that cannot be used: a missing, empty, truncated or non-audio file, or samples that are not finite.

    The message names the thing (file, utterance) and the reason.
    """
