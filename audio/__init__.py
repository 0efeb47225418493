"""audio: from a file to feature frames (loading, resampling, Kaldi-compatible features, CMVN, augmentation).

    from tasr import audio
    wave = audio.load("utt.flac")                 # [N] float32 in [-1, 1], 16 kHz (m4a, mp4, webm, ...: FFmpeg)
    for block in audio.stream_blocks("long.m4a", 16000, block_seconds=30): ...  # the same, block by block
    feats = audio.fbank(wave)                     # [T, 80] Kaldi log-mel (25 ms / 10 ms frames)
    frontend = audio.Fbank()                      # module: (waveforms [B, N], lengths [B]) -> (feats [B, T, 80], frame_lengths [B])
"""

from tasr.audio.errors import AudioError
from tasr.audio.features import INT16_SCALE, Fbank, Mfcc, fbank, mfcc
from tasr.audio.framing import frame_count
from tasr.audio.loading import FILE_SUFFIXES, AudioInfo, info, load
from tasr.audio.blocks import stream_blocks
from tasr.audio.online import OnlineFbank, OnlineMfcc
from tasr.audio.cmvn import GlobalCMVN
from tasr.audio.specaugment import SpecAugment
from tasr.audio.perturb import add_noise, narrowband, speed_perturb
from tasr.audio.energy import energy_db

__all__ = [
    "AudioError", "load", "fbank", "Fbank", "mfcc", "Mfcc", "frame_count", "INT16_SCALE",
    "OnlineFbank", "OnlineMfcc", "GlobalCMVN", "SpecAugment", "speed_perturb", "narrowband", "add_noise",
    "info", "AudioInfo", "stream_blocks", "FILE_SUFFIXES",
    "energy_db",
]
