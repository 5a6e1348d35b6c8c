import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdlab.data import load_dataset, load_splits, standard_augment
from kdlab.methods import Distiller, Supervised
from kdlab.metrics import segmentation_metrics
from kdlab.models import create
from kdlab.train import History, evaluate, fit, make_optimizer, predict, warmup_cosine


def blobs(n=256, seed=0):
    """Two linearly separable Gaussian blobs as 1x4x4 'images'."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 1, 4, 4, generator=g) * 0.5 + (y.float() * 2 - 1)[:, None, None, None]
    return x, y


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))


def test_fit_learns_and_records_history():
    data = blobs()
    history = fit(Supervised(mlp()), data, data, epochs=4, lr=1e-2, batch_size=32, progress=False)
    assert len(history) == 4 and not history.interrupted
    assert {"epoch", "train/ce", "train/loss", "val/acc", "val/loss", "lr", "time_s"} <= history.keys()
    assert history.series("train/loss")[-1] < history.series("train/loss")[0]
    assert history.best("val/acc") > 0.95 and history.last("val/acc") > 0.95
    assert history.to_records()[0]["epoch"] == 1 and history.wall_time_s > 0
    assert "4 epochs" in repr(history)


def test_watch_records_its_numbers_after_each_epoch_in_eval_mode():
    data = blobs()
    seen = []

    def watch(distiller):
        seen.append((distiller.training, torch.is_grad_enabled()))
        return {"weight norm": distiller.student[1].weight.norm().item(), "calls": len(seen)}

    history = fit(Supervised(mlp()), data, data, epochs=3, lr=1e-2, batch_size=32, progress=False, watch=watch)
    assert seen == [(False, False)] * 3, "the watch sees the distiller in eval mode, without autograd"
    assert history.series("watch/calls") == [1, 2, 3] and len(set(history.series("watch/weight norm"))) == 3
    plain = fit(Supervised(mlp()), data, data, epochs=3, lr=1e-2, batch_size=32, progress=False)
    assert plain.series("val/acc") == history.series("val/acc"), "watching changes nothing in training"
    with pytest.raises(TypeError, match="watch must be a function of the distiller"):
        fit(Supervised(mlp()), data, epochs=1, progress=False, watch={"acc": 1.0})


def test_same_seed_same_history():
    data = blobs()
    runs = [fit(Supervised(mlp(0)), data, data, epochs=2, batch_size=32, seed=3, progress=False) for _ in range(2)]
    drop_time = [[{k: v for k, v in r.items() if k != "time_s"} for r in h.rows] for h in runs]
    assert drop_time[0] == drop_time[1]


class NaNAfter(Distiller):
    def __init__(self, student, bad_step):
        super().__init__(student)
        self.calls, self.bad_step = 0, bad_step

    def forward(self, x, y, *, progress=0.0):
        self.calls += 1
        logits = self.student(x)
        bad = torch.tensor(float("nan")) if self.calls > self.bad_step else torch.tensor(0.0)
        return logits, {"ce": F.cross_entropy(logits, y), "feature": logits.sum() * 0 + bad}


def test_non_finite_loss_names_the_term():
    with pytest.raises(FloatingPointError, match="feature"):
        fit(NaNAfter(mlp(), bad_step=3), blobs(), epochs=2, batch_size=32, progress=False)


class InterruptAfter(Supervised):
    def __init__(self, student, steps):
        super().__init__(student)
        self.calls, self.steps = 0, steps

    def forward(self, x, y, *, progress=0.0):
        self.calls += 1
        if self.calls > self.steps:
            raise KeyboardInterrupt
        return super().forward(x, y, progress=progress)


def test_interrupt_keeps_completed_epochs(capsys):
    history = fit(InterruptAfter(mlp(), steps=20), blobs(), blobs(), epochs=5, batch_size=32, progress=False)
    assert history.interrupted and len(history) == 2  # 8 steps per epoch
    assert "Interrupted" in capsys.readouterr().out


def test_progress_reaches_distiller():
    seen = []

    class Spy(Supervised):
        def forward(self, x, y, *, progress=0.0):
            seen.append(progress)
            return super().forward(x, y)

    fit(Spy(mlp()), blobs(64), epochs=2, batch_size=32, progress=False)
    assert seen == [0.0, 0.25, 0.5, 0.75]


def test_augment_is_applied_to_training_batches():
    calls = []

    def augment(x, generator=None):
        calls.append(x.shape)
        return x

    fit(Supervised(mlp()), blobs(64), epochs=1, batch_size=32, augment=augment, progress=False)
    assert len(calls) == 2


def test_per_pixel_targets_are_augmented_with_their_images():
    """With (N, H, W) targets fit calls augment(x, y, generator=g): the masks get the images' transform."""
    g = torch.Generator().manual_seed(0)
    mask = torch.randint(0, 3, (32, 8, 8), generator=g)
    x = mask[:, None].float().expand(32, 3, 8, 8) / 2  # the image spells out its own mask
    seen = []

    class Spy(Supervised):
        def forward(self, x, y, *, progress=0.0):
            seen.append((x, y))
            return super().forward(x, y, progress=progress)

    model = nn.Sequential(nn.Conv2d(3, 3, 1))
    fit(Spy(model), (x, mask), epochs=1, batch_size=16, augment=standard_augment(), progress=False)
    xs, ys = (torch.cat(t) for t in zip(*seen))
    assert torch.equal(xs[:, 0] * 2, ys.float()), "masks were cropped and flipped with their images"
    unchanged = (ys[:, None] == mask[None]).flatten(2).all(2).any(1)
    assert not unchanged.all(), "the batches were augmented"
    with pytest.raises(TypeError):  # an image-only augmentation cannot take the masks
        fit(Supervised(model), (x, mask), epochs=1, batch_size=16, augment=lambda x, generator=None: x,
            progress=False)


def test_supervised_segmentation_trains_with_miou():
    train, val, _ = load_splits("shapes", n_train=16, n_test=8, n_val=8, img_size=64, difficulty=0.0, seed=0,
                                target="mask")
    torch.manual_seed(0)
    model = create("seg_cnn_small")
    history = fit(Supervised(model), train, val, epochs=2, lr=1e-2, batch_size=8, augment=standard_augment(),
                  metrics=segmentation_metrics, progress=False)
    assert {"train/ce", "val/miou", "val/pixel_acc"} <= history.keys()
    assert all(math.isfinite(v) for v in history.series("train/ce"))
    assert 0.0 <= history.last("val/miou") <= 1.0 and 0.0 <= history.last("val/pixel_acc") <= 1.0
    assert history.series("train/ce")[-1] < history.series("train/ce")[0]
    last = {k.split("/")[1]: v for k, v in history.rows[-1].items() if k.startswith("val/")}
    assert evaluate(model, val, metrics=segmentation_metrics) == last


def test_warmup_cosine_schedule():
    values = [warmup_cosine(s, total_steps=100, warmup_steps=10) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:])), "monotone decay after warm-up"
    assert values[-1] < 0.01 and warmup_cosine(55, 100, 10) == pytest.approx(0.5)


def test_evaluate_and_predict():
    x, y = blobs()
    model = mlp()
    metrics = evaluate(model, (x, y))
    assert set(metrics) == {"acc", "loss"} and 0 <= metrics["acc"] <= 1
    assert predict(model, x, batch_size=100).shape == (len(x), 2)
    assert math.isclose(evaluate(Supervised(model), (x, y))["acc"], metrics["acc"])


def test_bad_arguments():
    data = blobs()
    with pytest.raises(TypeError, match="Distiller"):
        fit(mlp(), data, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        fit(Supervised(mlp()), data, epochs=0)
    with pytest.raises(ValueError, match="same length"):
        fit(Supervised(mlp()), (data[0], data[1][:10]), epochs=1)
    with pytest.raises(TypeError, match=r"\.x and \.y"):
        fit(Supervised(mlp()), [1, 2], epochs=1)
    with pytest.raises(ValueError, match="batch_size"):
        fit(Supervised(mlp()), data, epochs=1, batch_size=1)
    with pytest.raises(ValueError, match="lr"):
        fit(Supervised(mlp()), data, epochs=1, lr=0.0)
    with pytest.raises(ValueError, match="grad_clip"):
        fit(Supervised(mlp()), data, epochs=1, grad_clip=-1.0)
    with pytest.raises(ValueError, match="batch_size"):
        predict(mlp(), data[0], batch_size=0)
    with pytest.raises(ValueError, match="mode"):
        History([{"val/acc": 0.5}]).best("val/acc", mode="largest")
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer(mlp().parameters(), "lbfgs", 1e-3, 0.0)
    with pytest.raises(ValueError, match="nothing to train"):
        make_optimizer(mlp().requires_grad_(False).parameters(), "adamw", 1e-3, 0.0)


def test_empty_history_errors():
    with pytest.raises(KeyError, match="no epoch"):
        History().last("val/acc")
    assert repr(History()) == "History(empty)"


def test_fit_refuses_to_validate_on_the_test_set():
    train, test = load_dataset("shapes", n_train=8, n_test=8, seed=0)
    with pytest.raises(ValueError, match="must not validate on the test set 'shapes-test'"):
        fit(Supervised(create("cnn_small")), train, test, epochs=1, progress=False)
