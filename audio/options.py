"""Kaldi's feature options, with Kaldi's names, defaults and meanings.

Names follow Kaldi's command-line options with `-` turned into `_` (as in
`torchaudio.compliance.kaldi`). tasr changes two defaults for fbank: `num_mel_bins=80`
(Kaldi: 23) and `dither=0.0` (Kaldi: 1.0); mfcc keeps Kaldi's 23 bins but also uses dither 0.

Input scale: tasr waveforms are in [-1, 1]. Kaldi reads 16-bit files as integers, so its
samples are 32768 times larger; each log-mel (power) value is then larger by
log(32768**2) = 20.79 (fbank) where the energy floor does not act. `int16_scale=True`
multiplies the input by 32768 first, giving exactly the numbers Kaldi gives for the same file.
"""

import dataclasses
import math

WINDOW_TYPES = ("povey", "hamming", "hanning", "rectangular", "blackman")


@dataclasses.dataclass(frozen=True)
class FrameOptions:
    """How the waveform is cut into windowed frames (Kaldi's FrameExtractionOptions)."""

    sample_rate: float = 16000.0  # Hz (Kaldi --sample-frequency, default 16000)
    frame_length: float = 25.0  # ms per frame (Kaldi default 25)
    frame_shift: float = 10.0  # ms between frame starts (Kaldi default 10)
    dither: float = 0.0  # std of Gaussian noise added to each frame; Kaldi default 1.0 (int16 scale), tasr 0.0
    preemphasis_coefficient: float = 0.97  # x[i] -= c * x[i-1] inside each frame (Kaldi default 0.97)
    remove_dc_offset: bool = True  # subtract each frame's mean (Kaldi default true)
    window_type: str = "povey"  # povey|hamming|hanning|rectangular|blackman (Kaldi default povey)
    round_to_power_of_two: bool = True  # zero-pad each frame to the next power of two for the FFT (Kaldi default true)
    blackman_coeff: float = 0.42  # the constant of the generalised Blackman window (Kaldi default 0.42)
    snip_edges: bool = True  # true: only frames that fit inside the signal; false: frames centred every shift,
    #                           edges filled by reflection, num_frames = round(N / shift) (Kaldi default true)
    int16_scale: bool = False  # tasr: multiply [-1, 1] input by 32768 to work on Kaldi's integer scale

    @property
    def window_size(self) -> int:
        """Samples per frame, as Kaldi computes it."""
        return int(self.sample_rate * 0.001 * self.frame_length)

    @property
    def window_shift(self) -> int:
        """Samples between frame starts, as Kaldi computes it."""
        return int(self.sample_rate * 0.001 * self.frame_shift)

    @property
    def padded_window_size(self) -> int:
        """FFT length: the window size, or the next power of two when round_to_power_of_two."""
        size = self.window_size
        return 1 << (size - 1).bit_length() if self.round_to_power_of_two else size

    def check(self):
        if self.window_size < 2 or self.window_shift < 1:
            raise ValueError(
                f"frame_length={self.frame_length} ms and frame_shift={self.frame_shift} ms at "
                f"{self.sample_rate} Hz give {self.window_size} samples per frame and a shift of "
                f"{self.window_shift}: need at least 2 and 1"
            )
        if self.window_type not in WINDOW_TYPES:
            raise ValueError(f"window_type must be one of {', '.join(WINDOW_TYPES)}, got {self.window_type!r}")
        if self.dither < 0:
            raise ValueError(f"dither must be >= 0, got {self.dither}")


@dataclasses.dataclass(frozen=True)
class MelOptions:
    """The triangular mel filters (Kaldi's MelBanksOptions)."""

    num_mel_bins: int = 80  # number of triangular filters (Kaldi default 23, tasr fbank 80)
    low_freq: float = 20.0  # Hz, low edge of the first filter (Kaldi default 20)
    high_freq: float = 0.0  # Hz, high edge of the last filter; <= 0 means Nyquist + high_freq (Kaldi default 0)
    vtln_low: float = 100.0  # Hz, low inflection point of the VTLN warp (Kaldi default 100)
    vtln_high: float = -500.0  # Hz, high inflection point; <= 0 means Nyquist + vtln_high (Kaldi default -500)
    vtln_warp: float = 1.0  # VTLN warp factor; 1.0 means no warping (Kaldi default 1.0)

    def edges(self, sample_rate: float):
        """(low_freq, high_freq) in Hz after resolving a non-positive high_freq, checked as Kaldi does."""
        nyquist = 0.5 * sample_rate
        high = self.high_freq if self.high_freq > 0 else nyquist + self.high_freq
        if self.num_mel_bins < 3:
            raise ValueError(f"num_mel_bins must be at least 3, got {self.num_mel_bins}")
        if not (0.0 <= self.low_freq < nyquist and 0.0 < high <= nyquist and self.low_freq < high):
            raise ValueError(
                f"bad mel range: low_freq={self.low_freq}, high_freq={self.high_freq} (resolved {high}) "
                f"at {sample_rate} Hz; need 0 <= low < high <= Nyquist ({nyquist})"
            )
        return self.low_freq, high


@dataclasses.dataclass(frozen=True)
class FbankOptions:
    """What is computed from the filter outputs (Kaldi's FbankOptions and MfccOptions)."""

    use_energy: bool = False  # add the log frame energy as an extra coefficient (fbank default false, mfcc true)
    energy_floor: float = 0.0  # floor on the energy before the log; 0 means only the float epsilon (Kaldi default 0)
    raw_energy: bool = True  # energy before preemphasis and windowing (after dc removal) (Kaldi default true)
    htk_compat: bool = False  # fbank: energy last instead of first; mfcc: c0/energy last, as HTK (Kaldi default false)
    use_log_fbank: bool = True  # fbank: log of the filter outputs (Kaldi default true)
    use_power: bool = True  # power spectrum (true) or magnitude (false) (Kaldi default true)
    num_ceps: int = 13  # mfcc: cepstral coefficients kept, including c0 (Kaldi default 13)
    cepstral_lifter: float = 22.0  # mfcc: lifter constant Q, coefficient i times 1 + Q/2 sin(pi i / Q); 0 = off
    subtract_mean: bool = False  # subtract each utterance's mean feature vector (torchaudio's option; Kaldi does it in CMVN)


_GROUPS = (FrameOptions, MelOptions, FbankOptions)
FBANK_ONLY = {"use_log_fbank", "use_power"}
MFCC_ONLY = {"num_ceps", "cepstral_lifter"}
OPTION_NAMES = tuple(field.name for group in _GROUPS for field in dataclasses.fields(group))


def split_options(kind: str, sample_rate: float, options: dict):
    """Check `options` (Kaldi names) and return (FrameOptions, MelOptions, FbankOptions) with tasr's defaults for `kind`."""
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(f"unknown {kind} option(s): {', '.join(unknown)}; known options: {', '.join(OPTION_NAMES)}")
    if "sample_rate" in options:
        raise TypeError("give sample_rate as its own argument")
    foreign = sorted(set(options) & {"fbank": MFCC_ONLY, "mfcc": FBANK_ONLY}[kind])
    if foreign:
        raise TypeError(f"{', '.join(foreign)}: not {kind} option(s) (Kaldi's {kind} has no such option)")
    defaults = {"fbank": {}, "mfcc": {"num_mel_bins": 23, "use_energy": True}}[kind]
    values = {**defaults, **options, "sample_rate": float(sample_rate)}
    groups = tuple(
        group(**{f.name: values[f.name] for f in dataclasses.fields(group) if f.name in values}) for group in _GROUPS
    )
    frame, mel, feat = groups
    frame.check()
    mel.edges(frame.sample_rate)
    if kind == "mfcc" and not 1 <= feat.num_ceps <= mel.num_mel_bins:
        raise ValueError(f"num_ceps must be between 1 and num_mel_bins ({mel.num_mel_bins}), got {feat.num_ceps}")
    if not math.isfinite(feat.energy_floor) or feat.energy_floor < 0:
        raise ValueError(f"energy_floor must be >= 0, got {feat.energy_floor}")
    return groups
