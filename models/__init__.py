"""models: from feature frames to log-probabilities (truncated attention, encoder, CTC head, decoding).

    from tasr import models
    encoder = models.Encoder(input_dim=80, d_model=256, n_heads=4, n_layers=12, left=64, right=4)
    out, out_lengths = encoder(feats, frame_lengths)      # [B, T, 80] -> [B, T/4, 256]
    log_probs = models.CTCHead(256, vocab_size)(out)      # [B, T/4, V], blank = 0
    stream = encoder.eval().stream()                      # models.EncoderStream: feed(feats [n, 80]) -> [k, 256], flush()
"""

from tasr.models.attention import TruncatedMultiHeadAttention, truncated_attention
from tasr.models.ctc import BeamSearchDecoder, CTCHead, align, ctc_loss, greedy_decode
from tasr.models.encoder import Encoder
from tasr.models.streaming import EncoderStream

__all__ = [
    "truncated_attention", "TruncatedMultiHeadAttention", "Encoder", "EncoderStream",
    "CTCHead", "ctc_loss", "greedy_decode", "align", "BeamSearchDecoder",
]
