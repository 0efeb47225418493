"""audio.OnlineFbank / OnlineMfcc: chunked input gives the offline features."""

import pytest
import torch

from tasr import audio
from audio_helpers import fsdd_speech

CHUNKINGS = {"1 sample": [1], "mixed": [7, 1, 300, 160, 2], "one frame": [400], "1 s": [16000], "whole": [10**9]}


def feed(stream, signal, sizes):
    outputs, position, i = [], 0, 0
    while position < signal.numel():
        size = sizes[i % len(sizes)]
        outputs.append(stream.accept_waveform(signal[position : position + size]))
        position, i = position + size, i + 1
    outputs.append(stream.input_finished())
    return torch.cat(outputs)


@pytest.mark.parametrize("snip_edges", [True, False])
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_streaming_equals_offline(chunking, snip_edges):
    signal = fsdd_speech(16000).float()[: 16000 if chunking != "1 sample" else 4000]
    offline = audio.fbank(signal, snip_edges=snip_edges)
    streamed = feed(audio.OnlineFbank(snip_edges=snip_edges), signal, CHUNKINGS[chunking])
    assert streamed.shape == offline.shape
    assert (streamed - offline).abs().max() <= 1e-5


def test_frames_come_as_soon_as_they_are_complete():
    stream = audio.OnlineFbank()
    assert stream.accept_waveform(torch.zeros(399)).shape == (0, 80)
    assert stream.accept_waveform(torch.zeros(1)).shape == (1, 80)  # sample 400 completes frame 0
    assert stream.accept_waveform(torch.zeros(159)).shape == (0, 80)
    assert stream.accept_waveform(torch.zeros(1)).shape == (1, 80)
    assert stream.input_finished().shape == (0, 80)  # snip_edges=true: nothing is left


@pytest.mark.parametrize("length", [0, 1, 100, 399, 400, 401])
def test_short_streams_and_mfcc(length):
    signal = torch.rand(length) - 0.5
    for snip_edges in (True, False):
        streamed = feed(audio.OnlineMfcc(snip_edges=snip_edges), signal, [37])
        offline = audio.mfcc(signal, snip_edges=snip_edges)
        assert streamed.shape == offline.shape
        if offline.numel():
            assert (streamed - offline).abs().max() <= 1e-4


def test_reset_and_misuse():
    stream = audio.OnlineFbank(use_energy=True)
    signal = torch.rand(2000) - 0.5
    first = feed(stream, signal, [500])
    with pytest.raises(RuntimeError, match="reset"):
        stream.accept_waveform(signal)
    stream.reset()
    assert torch.equal(feed(stream, signal, [500]), first)
    with pytest.raises(audio.AudioError, match="NaN"):
        audio.OnlineFbank().accept_waveform(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="1-D"):
        audio.OnlineFbank().accept_waveform(torch.zeros(2, 10))


def test_memory_stays_bounded():
    stream = audio.OnlineFbank()
    for _ in range(50):
        stream.accept_waveform(torch.rand(1600) - 0.5)
    assert stream.buffer.numel() <= 400 + 160 + 1
