"""Decode with several CTC models at once, or one model hearing the audio at several speeds
(`tasr decode --model A --model B --speeds 0.9,1,1.1 --beam N`).

Every member (a model at a speed) proposes its N best texts for an utterance by beam search;
every member then scores every proposed text by log P(text | audio), summed over all its CTC
alignments, and the text with the highest mean over the members wins. The combination is per
sequence: CTC models emit their token spikes at different frames (and at another speed, the
frames themselves differ), so averaging frame posteriors fails. Texts, not token ids, are
exchanged, so the models may have different tokenizers; they must take audio at the same
sample rate. With a lexicon, every member's search keeps to its words, so the winner does too.
With an ARPA LM, the members search with it and the winner's score also holds what the beam
search adds: lm_weight x log10 P_LM(text) + word_score x words.
A speed of 0.9 plays the audio 10 % slower, pitch included, as speed perturbation
in training does: a model trained with such perturbation hears a few more voices of the speaker.
"""

import dataclasses

import torch

from tasr import audio
from tasr.models.ctc import log_likelihoods
from tasr.decoding import DecodingOptions, lm_format, make_decoder
from tasr.errors import TasrError
from tasr.lm import ArpaModel


def make_search(models, options: DecodingOptions, speeds=(1.0,)):
    """A callable (waveforms [B, N], lengths [B] samples) -> texts [B]: one model's search
    (`options`), or, for several models or speeds, an `EnsembleSearch` (beam search only)."""
    if len(models) > 1 or list(speeds) != [1.0]:
        return EnsembleSearch(models, options, speeds)
    model = models[0]
    search = make_decoder(model.tokenizer, options)

    def transcribe(waveforms, lengths):
        log_probs, out_lengths = model(waveforms, lengths)
        return [model.tokenizer.decode(ids) for ids in search(log_probs, out_lengths)]

    return transcribe


class EnsembleSearch:
    """Callable (waveforms [B, N], lengths [B] samples) -> best texts [B] of every model at every speed."""

    def __init__(self, models, options: DecodingOptions, speeds=(1.0,)):
        if options.greedy:
            raise TasrError("an ensemble (--model given more than once, or --speeds) needs --beam N")
        options.check()
        if options.lm and lm_format(options.lm) != "arpa":
            raise TasrError(f"--lm {options.lm}: an ensemble needs the LM as an ARPA file (it scores whole texts)")
        rates = {model.sample_rate for model in models}
        if len(rates) > 1:
            raise TasrError(f"the models of an ensemble must take the same sample rate, not {sorted(rates)} Hz")
        self.lm = ArpaModel(options.lm) if options.lm else None
        self.options = options = dataclasses.replace(options, nbest=options.beam)
        searches = [make_decoder(model.tokenizer, options) for model in models]
        self.members = [(model, search, speed) for model, search in zip(models, searches) for speed in speeds]

    @torch.inference_mode()
    def __call__(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        outputs = []  # per member: (model, log_probs [B, T, V], out_lengths [B], texts [B][N])
        for model, search, speed in self.members:
            device = next(model.parameters()).device
            heard, heard_lengths = waveforms, lengths
            if speed != 1.0:
                heard = audio.speed_perturb(waveforms, model.sample_rate, speed)
                heard_lengths = (lengths / speed).round().long().clamp(max=heard.shape[-1])
            log_probs, out_lengths = model(heard.to(device), heard_lengths.to(device))
            texts = [[model.tokenizer.decode(ids) for ids in hypotheses]
                     for hypotheses in search.nbest_lists(log_probs, out_lengths)]
            outputs.append((model, log_probs, out_lengths, texts))
        best = []
        for b in range(waveforms.shape[0]):
            candidates = list(dict.fromkeys(text for *_, texts in outputs for text in texts[b]))
            if not candidates:
                best.append("")
                continue
            total = torch.zeros(len(candidates))
            for model, log_probs, out_lengths, _ in outputs:
                spellings = [model.tokenizer.encode(text) for text in candidates]
                total += log_likelihoods(log_probs[b, : out_lengths[b]], spellings)
            best.append(candidates[int((total / len(outputs) + self._lm_scores(candidates)).argmax())])
        return best

    def _lm_scores(self, texts) -> torch.Tensor:
        """[len(texts)]: what the beam search adds to a text's score for its LM and its words (0 without an LM)."""
        if self.lm is None:
            return torch.zeros(len(texts))
        return torch.tensor([self.options.lm_weight * self.lm.log10_prob(text.split())
                             + self.options.word_score * len(text.split()) for text in texts])
