"""Export for serving: ONNX and TorchScript files that decide exactly as Hrm.predict, and a Triton repository."""

import subprocess
import sys

import onnxruntime
import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from hrm import Hrm, TrainConfig, Trainer
from hrm.export import ExportableHrm, export, main, patterned_batch, random_batch
from tests.conftest import ROOT
from tests.hrm.tiny import tiny_config

MAX_STEPS = 3
# torch 2.13 deprecates TorchScript; Triton's PyTorch backend still serves it, so the export writes and loads it.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def halting_model(**overrides) -> Hrm:
    """Returns a tiny HRM whose rows halt at different segments (distinct task embeddings, a sharp random Q head)."""
    torch.manual_seed(0)
    model = Hrm(tiny_config(**overrides)).eval()
    with torch.no_grad():
        model.task_emb.weight.normal_(0.0, 1.0)
        model.q_head.weight.normal_(0.0, 1.0)
        model.q_head.bias.zero_()
    return model


def load_exported(report):
    """Returns a function (inputs, task_ids, lengths) -> (logits, steps) that runs the written file as a server
    would."""
    if report.format == "onnx":
        session = onnxruntime.InferenceSession(str(report.model_path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda *tensors: [torch.from_numpy(o) for o in session.run(
            None, {name: t.numpy() for name, t in zip(names, tensors, strict=True)})]
    module = torch.jit.load(str(report.model_path))
    return lambda *tensors: module(*tensors)


@pytest.fixture(scope="module", params=["onnx", "torchscript"])
def exported(request, tmp_path_factory):
    """(model, report) of a tiny HRM exported with MAX_STEPS segments, once per format."""
    model = halting_model()
    report = export(model, request.param, tmp_path_factory.mktemp(request.param), max_steps=MAX_STEPS, name="tiny")
    return model, report


@pytest.mark.parametrize("head", [{}, {"copy_head": True, "answer_len": 2}])
def test_exportable_hrm_decides_as_predict_does_with_rows_halting_at_different_segments(head):
    model = halting_model(halt_max_steps=5, **head)
    batch = random_batch(model.config, batch_size=16)
    for max_steps in (None, 2):  # the model's own bound, and a tighter one
        expected = model.predict(batch, adaptive=True, max_steps=max_steps)
        with torch.no_grad():
            logits, steps = ExportableHrm(model, max_steps)(batch["inputs"], batch["task_ids"], batch["lengths"])
        assert torch.equal(steps, expected.steps)
        torch.testing.assert_close(logits, expected.logits, atol=1e-5, rtol=0)
    assert len(set(steps.tolist())) > 1, "the test needs rows that halt at different segments"


def test_export_writes_the_triton_layout_and_passes_its_parity_check(exported):
    model, report = exported
    filename = {"onnx": "model.onnx", "torchscript": "model.pt"}[report.format]
    assert report.model_path == report.config_path.parent / "1" / filename
    assert report.config_path.parent.name == "tiny" and report.max_steps == MAX_STEPS
    assert set(report.max_abs_diff) == {"random", "patterned"}
    assert all(diff <= 1e-4 for diff in report.max_abs_diff.values())


@pytest.mark.parametrize("batch_size", [1, 7])
def test_exported_file_matches_predict_at_any_batch_size(exported, batch_size):
    model, report = exported
    run = load_exported(report)
    for batch in (random_batch(model.config, batch_size, seed=batch_size), patterned_batch(model.config, batch_size)):
        expected = model.predict(batch, adaptive=True, max_steps=MAX_STEPS)
        with torch.no_grad():
            logits, steps = run(batch["inputs"], batch["task_ids"], batch["lengths"])
        assert logits.shape == (batch_size, model.config.output_len, model.config.vocab_size)
        assert logits.dtype == torch.float32 and steps.dtype == torch.int32
        assert torch.equal(steps, expected.steps)
        assert float((logits - expected.logits).abs().max()) <= 1e-4


def test_config_pbtxt_parses_as_a_triton_model_config_naming_the_exported_tensors(exported):
    model, report = exported
    config = text_format.Parse(report.config_path.read_text(), model_config_pb2.ModelConfig())
    assert config.name == "tiny" and config.max_batch_size == 64 and config.HasField("dynamic_batching")
    assert config.platform == {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}[report.format]
    if report.format == "onnx":
        session = onnxruntime.InferenceSession(str(report.model_path), providers=["CPUExecutionProvider"])
        file_inputs, file_outputs = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    else:  # Triton's PyTorch backend binds `<name>__<index>` to forward's index-th argument and output
        arguments = [a.name for a in torch.jit.load(str(report.model_path)).forward.schema.arguments[1:]]
        file_inputs = [f"{name}__{i}" for i, name in enumerate(arguments)]
        file_outputs = ["logits__0", "steps__1"]
    assert [i.name for i in config.input] == file_inputs
    assert [o.name for o in config.output] == file_outputs

    batch = random_batch(model.config, batch_size=2)
    with torch.no_grad():
        arguments = [batch["inputs"], batch["task_ids"], batch["lengths"]]
        served = [*arguments, *load_exported(report)(*arguments)]
    dtypes = {torch.int64: "TYPE_INT64", torch.int32: "TYPE_INT32", torch.float32: "TYPE_FP32"}
    for tensor, spec in zip(served, [*config.input, *config.output], strict=True):
        per_example = list(spec.reshape.shape) if spec.HasField("reshape") else list(spec.dims)
        assert per_example == list(tensor.shape[1:]), spec.name
        assert model_config_pb2.DataType.Name(spec.data_type) == dtypes[tensor.dtype], spec.name


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hrm.export", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint of the halting tiny HRM, written by the trainer as training does."""
    return Trainer(halting_model(), TrainConfig(), "cpu").save(tmp_path_factory.mktemp("ckpt") / "hrm.pt")


def test_cli_exports_a_checkpoint_and_prints_the_parity(checkpoint, tmp_path):
    result = run_cli("--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(tmp_path),
                     "--max-steps", "2", "--name", "student")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "student" / "1" / "model.onnx").is_file()
    assert (tmp_path / "student" / "config.pbtxt").is_file()
    assert "2 ACT segments unrolled" in result.stdout and "halting steps identical" in result.stdout


@pytest.fixture(scope="module")
def unreadable(tmp_path_factory):
    """A file that is not a checkpoint."""
    path = tmp_path_factory.mktemp("bad") / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    return path


@pytest.mark.parametrize("flags, message", [
    ([], "no checkpoint given; pass --checkpoint PATH"),
    (["--checkpoint", "missing.pt"], "missing.pt does not exist"),
    (["--checkpoint", "UNREADABLE"], "bad.pt is unreadable"),
    (["--opset", "12"], "ONNX opset 12 is not supported; choose 14..20"),
    (["--format", "torchscript", "--opset", "17"], "--opset applies only to --format onnx"),
    (["--max-steps", "0"], "max_steps must be at least 1"),
    (["--name", "../escape"], "is not a plain directory name"),
    (["--name", ".."], "is not a plain directory name"),
])
def test_bad_inputs_give_one_clear_line_and_exit_2(checkpoint, unreadable, tmp_path, capsys, flags, message):
    flags = [str(unreadable) if flag == "UNREADABLE" else flag for flag in flags]
    if flags[:1] != ["--checkpoint"] and flags:
        flags = ["--checkpoint", str(checkpoint), *flags]
    assert main([*flags, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hrm.export: ") and message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir()), "a refused export writes nothing"


def test_an_export_failing_its_parity_check_exits_2_and_leaves_nothing_for_triton(checkpoint, tmp_path, capsys):
    # ONNX Runtime's fp32 rounding differs from PyTorch's (by ~1e-6 here): a 1e-9 bound must refuse the export.
    assert main(["--checkpoint", str(checkpoint), "--out", str(tmp_path), "--max-steps", "1",
                 "--tolerance", "1e-9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hrm.export: parity check failed on random inputs") and err.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_unknown_format_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--format", "tflite"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
