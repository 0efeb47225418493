"""audio: from a file to feature frames (loading, resampling, Kaldi-compatible features, CMVN, augmentation).

    import audio
    wave = audio.load("utt.flac")                 # [N] float32 in [-1, 1], 16 kHz (m4a, mp4, webm, ...: FFmpeg)
    for block in audio.stream_blocks("long.m4a", 16000, block_seconds=30): ...  # the same, block by block
    feats = audio.fbank(wave)                     # [T, 80] Kaldi log-mel (25 ms / 10 ms frames)
    frontend = audio.Fbank()                      # module: (waveforms [B, N], lengths [B]) -> (feats [B, T, 80], frame_lengths [B])
"""

from audio.errors import AudioError
from audio.features import INT16_SCALE, Fbank, Mfcc, fbank, mfcc
from audio.framing import frame_count
from audio.loading import FILE_SUFFIXES, AudioInfo, info, load
from audio.blocks import stream_blocks
from audio.online import OnlineFbank, OnlineMfcc
from audio.cmvn import GlobalCMVN
from audio.specaugment import SpecAugment
from audio.perturb import speed_perturb
from audio.energy import energy_db

__all__ = [
    "AudioError", "load", "fbank", "Fbank", "mfcc", "Mfcc", "frame_count", "INT16_SCALE",
    "OnlineFbank", "OnlineMfcc", "GlobalCMVN", "SpecAugment", "speed_perturb",
    "info", "AudioInfo", "stream_blocks", "FILE_SUFFIXES",
    "energy_db",
]
