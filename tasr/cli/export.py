"""Export a model to ONNX: `tasr export exp/model.pt -o exp/onnx [--int8]`.

Writes `model.onnx` (CMVN, encoder and CTC head: Kaldi fbank frames [N, T, F] and lengths [N] ->
CTC log-probs [N, T', V] and lengths, dynamic batch and length), `tokens.txt` and, with --int8,
`model.int8.onnx` (int8 weights). They run in onnxruntime (`tasr.export.OnnxModel`) and in
sherpa-onnx as a "zipformer2_ctc" model. sherpa-onnx reads no feature options from the model:
give it the ones printed at the end (its defaults are high_freq=-400 and snip_edges=False), or
use `tasr.export.sherpa_recognizer(DIR)`, which sets them. With --streaming, also
`streaming.onnx`: the chunk-wise model with its caches as inputs and outputs
(`tasr.export_streaming`, run by `tasr.onnx_runtime.OnnxStream`).
"""

import os

from tasr import export
from tasr import export_streaming
from tasr.onnx_runtime import STREAMING_FILE, STREAMING_INT8_FILE
from tasr.model import SpeechRecognizer


def add_arguments(parser):
    parser.add_argument("model", help="model file (model.pt)")
    parser.add_argument("-o", "--output-dir", required=True, help="folder to write model.onnx and tokens.txt into")
    parser.add_argument("--int8", action="store_true", help="also write model.int8.onnx (dynamic int8 quantisation)")
    parser.add_argument("--streaming", action="store_true",
                        help="also write streaming.onnx: one fixed-size chunk step with the caches as inputs and "
                             "outputs (and with --int8 streaming.int8.onnx); see tasr/export_streaming.py")
    parser.add_argument("--chunk-ms", type=float, default=export_streaming.DEFAULT_CHUNK_MS,
                        help="audio per streaming step, ms (default %(default)s; rounded to output frames)")


def main(args):
    model = SpeechRecognizer.load(args.model)
    if args.streaming:
        export_streaming.streaming_graph(model, args.chunk_ms)  # a model that cannot stream stops here
    written = export.export(model, args.output_dir, int8=args.int8)
    for path in written.values():
        print(_size_line(path))
    for name in (export.MODEL_FILE, export.INT8_FILE):
        if name in written:
            onnx_model = export.OnnxModel(args.output_dir, int8=name == export.INT8_FILE, threads=1)
            print(f"{name}: largest log-prob difference from PyTorch on noise: "
                  f"{export.max_difference(model, onnx_model):.2g}")
    if args.streaming:
        path = export_streaming.export_streaming(model, args.output_dir, args.chunk_ms)
        streamed = {STREAMING_FILE: path}
        if args.int8:
            int8_path = os.path.join(args.output_dir, STREAMING_INT8_FILE)
            streamed[STREAMING_INT8_FILE] = export.quantize(path, int8_path)
        for name, path in streamed.items():
            print(_size_line(path))
            difference = export_streaming.stream_difference(model, args.output_dir,
                                                            int8=name == STREAMING_INT8_FILE)
            print(f"{name}: largest log-prob difference of the stream from PyTorch offline on noise: {difference:.2g}")
    problems = export.sherpa_incompatibilities(export.fbank_options(model))
    if problems:
        print(f"sherpa-onnx cannot compute this model's features: {'; '.join(problems)}")
    else:
        options = export.sherpa_feature_options(export.metadata(model))
        print("sherpa-onnx: OfflineZipformerCtcModelConfig(model=..., ...) with FeatureExtractorConfig("
              + ", ".join(f"{k}={v!r}" for k, v in options.items()) + ")")


def _size_line(path) -> str:
    size = os.path.getsize(path)
    return f"{path}  {size / 1e6:.1f} MB" if size >= 100_000 else f"{path}  {size / 1e3:.1f} kB"
