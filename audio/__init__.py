"""audio: from a file to feature frames (loading, resampling, Kaldi-compatible features, CMVN, augmentation)."""
