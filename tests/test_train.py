"""`cnndsl train`: tiny training runs on digits, checkpoints and resume, errors, and torchrun.

Runs are a few dozen steps of LeNet-5 (about 0.02 s each on one CPU thread); the torchrun
test starts two gloo processes (a few seconds) and checks that they end with the same
weights as one process with the same global batch and seed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch  # noqa: E402

from cnndsl import cli  # noqa: E402
from tests.conftest import ROOT, ZOO  # noqa: E402

LENET = str(ZOO / "lenet5.cnn")


def _train(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(["train", LENET, "--data", "digits", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_tiny_run_learns_and_reports_accuracy(capsys, tmp_path):
    ckpt = tmp_path / "run.pt"
    rc, out, err = _train(capsys, "--max-steps", "30", "--checkpoint", str(ckpt))
    assert rc == 0, err
    assert "lenet5: 60,000 trainable parameters" in out
    assert "MAP criterion on rbf distances, predict argmin" in out
    assert "epoch 1/20 (30/44 steps)  step 30" in out
    last = out.strip().splitlines()
    assert any(line.startswith("test accuracy: ") and line.endswith("/360)") for line in last)
    state = _load(ckpt)
    assert state["step"] == 30 and state["epoch"] == 0 and state["offset"] == 30
    losses = state["losses"]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.92 * sum(losses[:5]) / 5  # the loss goes down
    assert state["test_accuracy"] == pytest.approx(float(last[-2].split()[2].rstrip("%")) / 100, abs=1e-4)


def test_resume_continues_the_same_run(capsys, tmp_path):
    first, resumed, straight = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt"
    assert _train(capsys, "--max-steps", "50", "--checkpoint", str(first))[0] == 0  # stops in epoch 2
    rc, out, _ = _train(capsys, "--resume", str(first), "--max-steps", "60", "--checkpoint", str(resumed))
    assert rc == 0
    assert f"resumed from {first} at step 50 (epoch 2, step 6 of it)" in out
    assert "epoch 2/20 (16/44 steps)  step 60" in out
    assert _train(capsys, "--max-steps", "60", "--checkpoint", str(straight))[0] == 0
    b, c = _load(resumed), _load(straight)
    assert b["step"] == c["step"] == 60 and len(b["losses"]) == 60
    assert b["losses"] == pytest.approx(c["losses"], rel=1e-6)  # the same batches, in the same order
    assert _max_diff(b["model"], c["model"]) < 1e-6
    assert _load(first)["step"] == 50  # --checkpoint elsewhere leaves the resumed file alone


def test_resume_of_a_finished_run_only_evaluates(capsys, tmp_path):
    ckpt = tmp_path / "done.pt"
    assert _train(capsys, "--max-steps", "3", "--checkpoint", str(ckpt))[0] == 0
    rc, out, _ = _train(capsys, "--resume", str(ckpt), "--max-steps", "3")
    assert rc == 0 and "nothing to train" in out and "test accuracy: " in out


def test_bad_data_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", LENET, "--data", "imagenet"])
    assert exc.value.code == 2
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--set", "classes=5"], "digits has 10 classes but lenet5's output `out` has shape 5 (try --set classes=10)"),
    (["--batch-size", "5000"], "--batch-size 5000 is larger than the training set (1437 samples)"),
])
def test_errors_exit_1(capsys, argv, message):
    rc, _, err = _train(capsys, *argv)
    assert rc == 1 and message in err


def test_resume_from_a_non_checkpoint(capsys, tmp_path):
    bogus = tmp_path / "bogus.pt"
    torch.save({"weights": torch.zeros(1)}, bogus)
    rc, _, err = _train(capsys, "--resume", str(bogus))
    assert rc == 1 and "not a cnndsl train checkpoint" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_gpu(capsys):
    rc, _, err = _train(capsys, "--device", "cuda", "--max-steps", "1")
    assert rc == 1 and "no CUDA device" in err


def test_rbf_outputs_are_distances():
    from cnndsl.tools.train import _criterion

    loss, predict = _criterion("rbf")
    dist = torch.tensor([[5.0, 0.5, 9.0], [1.0, 7.0, 3.0]])
    assert predict(dist).tolist() == [1, 0]
    target = torch.tensor([1, 0])
    assert loss(dist, target) < loss(dist, torch.tensor([2, 1]))
    _, predict = _criterion("fc")
    assert predict(dist).tolist() == [2, 1]


def test_digits_fit_any_input_shape():
    from cnndsl.tools.data import DataError, load

    for shape in [(1, 32, 32), (3, 28, 28), (64,)]:
        split = load("digits", shape)
        assert tuple(split.x_train.shape[1:]) == shape and len(split.y_train) == 1437 and len(split.y_test) == 360
        assert abs(float(split.x_train.mean())) < 1e-4 and float(split.x_train.std()) == pytest.approx(1, abs=1e-3)
    with pytest.raises(DataError, match="square number"):
        load("digits", (10,))


def test_torchrun_two_processes_match_one(capsys, tmp_path):
    single, double = tmp_path / "one.pt", tmp_path / "two.pt"
    common = ["--max-steps", "5", "--batch-size", "32", "--seed", "3"]
    rc, out, err = _train(capsys, *common, "--checkpoint", str(single))
    assert rc == 0, err
    entry = ["-m", "cnndsl.cli", "train"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", *entry,
         LENET, "--data", "digits", *common, "--checkpoint", str(double), "--device", "cpu"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test accuracy: ") == 1  # only rank 0 prints
    assert "2 processes of 16" in proc.stdout
    one, two = _load(single), _load(double)
    assert two["step"] == one["step"] == 5
    assert _max_diff(one["model"], two["model"]) < 1e-5
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)
