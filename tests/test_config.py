import pytest
import torch

from kdlab import config


def test_explicit_profiles_resolve_to_themselves():
    for name in config.PROFILES:
        assert config.resolve_profile(name) == name
    assert config.resolve_profile(" CPU ") == "cpu"


def test_auto_follows_cuda_and_env(monkeypatch):
    monkeypatch.delenv("KDLAB_PROFILE", raising=False)
    assert config.resolve_profile("auto") == ("gpu" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("KDLAB_PROFILE", "smoke")
    assert config.resolve_profile("auto") == "smoke"
    assert config.resolve_profile("cpu") == "cpu", "the environment overrides auto only"


@pytest.mark.parametrize("bad", ["fast", "", "GPU2"])
def test_unknown_profile_lists_valid_ones(bad):
    with pytest.raises(ValueError, match="smoke, cpu, gpu, auto"):
        config.resolve_profile(bad)


def test_unknown_env_profile_is_an_error(monkeypatch):
    monkeypatch.setenv("KDLAB_PROFILE", "turbo")
    with pytest.raises(ValueError, match="KDLAB_PROFILE"):
        config.resolve_profile("auto")


def test_by_profile_picks_the_value():
    assert config.by_profile("smoke", smoke=1, cpu=2, gpu=3) == 1
    assert config.by_profile("gpu", smoke=1, cpu=2, gpu=3) == 3


def test_seed_everything_repeats_random_streams():
    gen_a = config.seed_everything(7)
    a = torch.rand(3), torch.rand(2, generator=gen_a)
    gen_b = config.seed_everything(7)
    b = torch.rand(3), torch.rand(2, generator=gen_b)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError):
        config.seed_everything(-1)


def test_pick_device():
    assert config.pick_device("cpu") == torch.device("cpu")
    assert config.pick_device("auto").type in {"cpu", "cuda"}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            config.pick_device("cuda")


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "c"))
    assert config.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_env_report_names_profile_and_versions(monkeypatch):
    monkeypatch.setenv("KDLAB_PROFILE", "smoke")
    report = config.env_report()
    assert report["profile"] == "smoke" and report["torch"] == torch.__version__
    assert "profile" in str(report) and "| profile | smoke |" in report._repr_markdown_()
