"""The memo of teacher outputs (kdlab.methods.common.teacher_pass): training with it is bit-identical to training
without it, every row that shares a teacher output reads it once, and a learning teacher side is never cached."""
import pytest
import torch

from kdlab.data import load_dataset, standard_augment
from kdlab.experiments import Run, run_experiments
from kdlab.methods import CSKD, KD, OFA, TEACHER_OUTPUTS, FitNet, TeacherOutputs
from kdlab.models import create

FIT = {"epochs": 2, "batch_size": 16, "lr": 2e-3, "augment": standard_augment()}
VIT = {"patch_size": 8, "embed_dim": 32, "num_heads": 2, "depth": 2}


@pytest.fixture(scope="module")
def data():
    return load_dataset("shapes", n_train=48, n_test=16, seed=0)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(1)
    return create("cnn_small").eval()


def grid(teacher):
    """Rows whose teacher outputs are shared (KD and OFA read the logits) or their own (FitNet, CSKD)."""
    return [
        Run("KD", lambda: KD(create("cnn_small"), teacher, temperature=2.0), FIT),
        Run("KD, ViT", lambda: KD(create("vit", **VIT), teacher, temperature=2.0), FIT),
        Run("OFA", lambda: OFA(create("cnn_small"), teacher, stages=()), FIT),
        Run("FitNet", lambda: FitNet(create("cnn_small"), teacher, pairs=[[3, 3]]), FIT),
        Run("CSKD", lambda: CSKD(create("vit_distilled", **VIT), teacher, 2), FIT),
    ]


def numbers(outcomes):
    return {label: ([[{k: v for k, v in r.items() if k != "time_s"} for r in h.rows] for h in o.histories], o.tests)
            for label, o in outcomes.items()}


def test_training_with_the_memo_is_bit_identical_to_training_without(data, teacher, monkeypatch):
    train, test = data
    torch.set_num_threads(1)
    monkeypatch.setattr(TEACHER_OUTPUTS, "max_bytes", 0)
    TEACHER_OUTPUTS.clear()
    without = numbers(run_experiments(grid(teacher), train, None, test, seeds=[0, 1], workers=1, progress=False))
    assert TEACHER_OUTPUTS.hits == TEACHER_OUTPUTS.misses == 0, "off means off"
    monkeypatch.setattr(TEACHER_OUTPUTS, "max_bytes", 2**30)
    with_memo = numbers(run_experiments(grid(teacher), train, None, test, seeds=[0, 1], workers=1, progress=False))
    assert with_memo == without
    steps = 2 * 2 * 3  # seeds x epochs x batches of 16 in 48
    # KD, KD ViT and OFA share the logits (1 miss, 2 hits per step); FitNet and CSKD have their own outputs.
    assert TEACHER_OUTPUTS.misses == 3 * steps and TEACHER_OUTPUTS.hits == 2 * steps
    TEACHER_OUTPUTS.clear()


def test_the_memo_is_bounded_and_least_recently_used_first_out():
    memo = TeacherOutputs(max_bytes=3 * 40)
    ten = lambda v: torch.full((10,), float(v))  # noqa: E731  (40 bytes)
    for key in "abc":
        memo.put(key, ten(ord(key)))
    assert memo.get("a") is not None  # a is now the most recent
    memo.put("d", {"x": ten(0)})
    assert memo.get("b") is None and len(memo) == 3 and memo.bytes == 120
    memo.put("huge", torch.zeros(1000))
    assert memo.get("huge") is None, "an entry larger than the cap is not stored"
    with pytest.raises(TypeError, match="tensors"):
        memo.put("bad", "text")
    with pytest.raises(ValueError, match="max_bytes"):
        TeacherOutputs(-1)


def test_what_is_never_memoised(teacher):
    from kdlab.methods import CAFD, Distiller
    assert CAFD.teacher_cache_key is Distiller.teacher_cache_key, "CAFD's prompted teacher learns: no key"

    class Overrides(Distiller):
        def teacher_forward(self, x):
            return self.teacher(x)

    assert Overrides(create("cnn_small"), teacher).teacher_cache_key() is None, "an override must declare its key"
    assert KD(create("cnn_small"), teacher).teacher_cache_key() is not None
    x = torch.rand(2, 3, 32, 32)
    distiller = KD(create("cnn_small"), teacher)
    TEACHER_OUTPUTS.clear()
    first, second = distiller.teacher_forward(x), distiller.teacher_forward(x.clone())
    assert first is second and TEACHER_OUTPUTS.hits == 1, "the key is the content, not the tensor"
    distiller.teacher_forward(x + 1e-7)
    assert TEACHER_OUTPUTS.misses == 2, "any changed byte is a new input"
    TEACHER_OUTPUTS.clear()
