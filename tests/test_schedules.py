"""Our timestep lists against the official RectifiedFlowScheduler (ltx_video.schedulers.rf)."""

import pytest
import torch
from videodit.model.schedules import SchedulerConfig, check_allowed, timesteps

rf = pytest.importorskip("ltx_video.schedulers.rf")

CONFIG_090 = {"shifting": "SD3", "base_resolution": None, "target_shift_terminal": 0.1}  # 0.9.0 / 0.9.1
CONFIG_095 = {"sampler": "LinearQuadratic"}  # 0.9.5 and later
LATENT_SHAPES = [(1, 2, 3), (16, 16, 24), (16, 22, 38), (4, 8, 8), (32, 32, 32)]  # token counts 6 .. 32768


def official(config: dict, steps: int, latent_shape) -> list[float]:
    scheduler = rf.RectifiedFlowScheduler(**{k: v for k, v in config.items() if v is not None})
    scheduler.set_timesteps(steps, samples_shape=(1, 128, *latent_shape))
    return scheduler.timesteps.tolist()


def assert_close(ours, ref, tol=1e-6):
    assert len(ours) == len(ref), (ours, ref)
    diff = max(abs(a - b) for a, b in zip(ours, ref))
    assert diff <= tol, f"max |diff| {diff} > {tol}: ours {ours} official {ref}"


@pytest.mark.parametrize("latent_shape", LATENT_SHAPES)
@pytest.mark.parametrize("steps", [2, 5, 20, 40, 50])
def test_shifted_matches_official_090(steps, latent_shape):
    ref = official(CONFIG_090, steps, latent_shape)
    assert_close(timesteps("auto", steps, latent_shape, CONFIG_090), ref)
    assert_close(timesteps("shifted", steps, latent_shape), ref)
    assert abs(ref[-1] - 0.1) < 1e-6


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 7, 8, 20, 30, 40, 50])
def test_linear_quadratic_matches_official(steps):
    ref = official(CONFIG_095, steps, (16, 16, 24))
    assert_close(timesteps("auto", steps, (16, 16, 24), CONFIG_095), ref)
    assert_close(timesteps("linear_quadratic", steps, (3, 5, 7)), ref)  # no shift: shape does not matter


def test_linear_quadratic_known_values():
    # design doc section 4.2, values to 4 decimals
    expected = [1.0, 0.9937, 0.9875, 0.9812, 0.975, 0.9094, 0.725, 0.4219]
    assert [round(t, 4) for t in timesteps("linear_quadratic", 8, (1, 1, 1))] == expected


@pytest.mark.parametrize(
    "config",
    [
        {"sampler": "Constant", "shift": 2.0},
        {"sampler": "Uniform", "shifting": "SimpleDiffusion", "base_resolution": 1024},
        {"sampler": "LinearQuadratic", "shifting": "SD3", "target_shift_terminal": 0.1},
        {"sampler": "Uniform", "shifting": "SD3"},  # no terminal stretch
    ],
)
@pytest.mark.parametrize("latent_shape", [(16, 16, 24), (2, 4, 4)])
def test_other_configs_match_official(config, latent_shape):
    ref = official(config, 20, latent_shape)
    assert_close(timesteps("auto", 20, latent_shape, config), ref)


def test_distilled_lists_match_official():
    # 0.9.6 distilled: linear-quadratic checkpoint scheduler, 8 steps
    assert_close(timesteps("distilled", 8, (16, 16, 24)), official(CONFIG_095, 8, (16, 16, 24)))
    # 0.9.7 / 0.9.8 distilled multi-scale passes: explicit lists handed to set_timesteps(timesteps=...)
    for steps, listed in [(7, [1.0000, 0.9937, 0.9875, 0.9812, 0.9750, 0.9094, 0.7250]), (3, [0.9094, 0.7250, 0.4219])]:
        scheduler = rf.RectifiedFlowScheduler(**CONFIG_095)
        scheduler.set_timesteps(timesteps=listed)
        assert_close(timesteps("distilled", steps, (16, 16, 24)), scheduler.timesteps.tolist())


def test_distilled_bad_steps_names_valid_values():
    with pytest.raises(ValueError, match=r"8 .*7 .*3"):
        timesteps("distilled", 5, (16, 16, 24))


def test_allowed_inference_steps():
    allowed = [round(t, 4) for t in timesteps("distilled", 8, (1, 1, 1))] + [0.725, 0.4219]
    timesteps("distilled", 8, (16, 16, 24), allowed_inference_steps=allowed)
    timesteps("distilled", 3, (16, 16, 24), allowed_inference_steps=allowed)
    with pytest.raises(ValueError, match="allowed_inference_steps"):
        timesteps("linear_quadratic", 30, (16, 16, 24), allowed_inference_steps=allowed)
    with pytest.raises(ValueError, match=r"0\.9983"):
        check_allowed([1.0, 0.9983], allowed)


def test_scheduler_config_from_metadata():
    c = SchedulerConfig.from_metadata(
        {
            "_class_name": "RectifiedFlowScheduler",
            "num_train_timesteps": 1000,
            "shifting": "SD3",
            "base_resolution": None,
            "target_shift_terminal": 0.1,
        }
    )
    assert (c.sampler, c.shifting, c.target_shift_terminal, c.base_resolution) == ("Uniform", "SD3", 0.1, 1024)
    with pytest.raises(ValueError, match="sampler"):
        SchedulerConfig.from_metadata({"sampler": "Karras"})
    with pytest.raises(ValueError, match="shifting"):
        SchedulerConfig.from_metadata({"shifting": "Flux"})
    with pytest.raises(ValueError, match="shift"):
        SchedulerConfig.from_metadata({"sampler": "Constant"})
    with pytest.raises(ValueError, match="scheduler_config"):
        timesteps("auto", 10, (1, 1, 1))
    with pytest.raises(ValueError, match="kind"):
        timesteps("karras", 10, (1, 1, 1))


def test_shift_uses_token_count_example():
    # design doc 4.2: 768x512x121 (16x16x24 latent), 40 steps -> 1.0, 0.998, 0.9959, ..., 0.3122, 0.1
    ts = timesteps("shifted", 40, (16, 16, 24))
    assert [round(t, 4) for t in ts[:3]] == [1.0, 0.998, 0.9959]
    assert [round(t, 4) for t in ts[-2:]] == [0.3122, 0.1]
    assert torch.tensor(ts).diff().lt(0).all()
