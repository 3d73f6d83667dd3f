from __future__ import annotations

import re
import textwrap

import pytest
import yaml

from blindsr.config import (
    PRESETS,
    Config,
    ConfigError,
    apply_overrides,
    build_config,
    dump_yaml,
    flatten,
    load_yaml,
    save_yaml,
    to_dict,
)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_yaml_round_trip_every_preset(preset, tmp_path):
    cfg = PRESETS[preset]()
    path = save_yaml(cfg, tmp_path / "c.yaml")
    again = load_yaml(path)
    assert again == cfg
    assert dump_yaml(again) == path.read_text()


def test_partial_yaml_keeps_defaults(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("optim:\n  lr: 1e-3\ndata:\n  patch_size: 32\n")
    cfg = load_yaml(p)
    assert cfg.optim.lr == pytest.approx(1e-3) and isinstance(cfg.optim.lr, float)  # YAML 1.1 reads 1e-3 as str
    assert cfg.data.patch_size == 32
    assert cfg.model == Config().model


def test_unknown_key_names_key_file_and_choices(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_yaml(p)
    msg = str(e.value)
    assert "optim.lrr" in msg and str(p) in msg and "did you mean 'optim.lr'" in msg
    assert "lr_condition" in msg  # valid keys listed


def test_a_renamed_key_names_its_new_name(tmp_path):
    p = tmp_path / "old.yaml"
    p.write_text("data:\n  task_size: 4\n")
    with pytest.raises(ConfigError, match=rf"'data.task_size' in {p} was renamed: use 'data.tasks_per_step'"):
        load_yaml(p)
    with pytest.raises(ConfigError, match=r"'data.task_size' in --set was renamed: use 'data.tasks_per_step'"):
        build_config("cmdsr_smoke", None, ["data.task_size=4"])
    with pytest.raises(ConfigError, match=r"'train.device' in --set was renamed: use 'scaling.use_gpu' \(true, false"):
        build_config("cmdsr_smoke", None, ["train.device=cpu"])


def test_unknown_top_level_section(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("modle: {name: cdsr}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'modle'.*did you mean 'model'"):
        load_yaml(p)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("data:\n  patch_size: big\n", r"data.patch_size in .*expected int, got 'big'"),
        ("data:\n  patch_size: 1.5\n", r"data.patch_size .*expected int"),
        ("optim:\n  lr: [1, 2]\n", r"optim.lr .*expected float"),
        ("data:\n  augment: maybe\n", r"data.augment .*expected bool"),
        (
            "degradation:\n  kernel: gaussian\n",
            r"degradation.kernel .*'gaussian' is not a valid choice.*'iso', 'aniso'",
        ),
        ("optim:\n  betas: [0.9, fast]\n", r"optim.betas\[1\] .*expected float"),
        ("optim: 3\n", r"optim .*expected a mapping"),
    ],
)
def test_wrong_types_are_reported(tmp_path, text, pattern):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=pattern):
        load_yaml(p)


def test_invalid_yaml_and_missing_file(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(p)
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "nope.yaml")


def test_overrides_coerce_types():
    cfg = apply_overrides(
        Config(),
        [
            "optim.lr=2e-4",
            "data.tasks_per_step=4",
            "data.augment=false",
            "degradation.noise_range=[0, 30]",
            "optim.milestones=10,20",
            "scaling.use_gpu=none",
            "train.storage_path=/tmp/runs",
            "name=a=b",
        ],
    )
    assert cfg.optim.lr == 2e-4
    assert cfg.data.tasks_per_step == 4 and cfg.data.augment is False
    assert cfg.degradation.noise_range == [0.0, 30.0]
    assert cfg.optim.milestones == [10, 20]
    assert cfg.scaling.use_gpu is None
    assert cfg.train.storage_path == "/tmp/runs"
    assert cfg.name == "a=b"


def test_override_errors():
    with pytest.raises(ConfigError, match=r"unknown key 'optim.learning_rate' in --set"):
        apply_overrides(Config(), ["optim.learning_rate=1"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides(Config(), ["optim.lr"])
    with pytest.raises(ConfigError, match=r"data.patch_size in --set: expected int"):
        apply_overrides(Config(), ["data.patch_size=x"])


def test_build_config_layers(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  tasks_per_step: 2\n")
    cfg = build_config("cmdsr_paper", p, ["model.support_size=5", "data.patches_per_task=10"])
    assert cfg.name == "cmdsr_x4"  # from the preset
    assert cfg.data.tasks_per_step == 2  # from the file
    assert cfg.model.support_size == 5  # from --set
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*cmdsr_paper"):
        build_config("nope")


def test_degradation_by_name_is_the_whole_section_at_the_configs_scale(tmp_path):
    from blindsr.degradations.presets import cdsr_train, dasr_iso

    cfg = build_config("cdsr_demo", None, ["degradation=dasr_iso"])
    assert cfg.degradation == dasr_iso(2)  # the demo's ×2, not the distribution's default ×4
    assert apply_overrides(Config(), ["degradation=cdsr_train", "scale=3"]).degradation == cdsr_train(3)
    p = tmp_path / "c.yaml"
    p.write_text("degradation: dasr_iso\n")
    assert load_yaml(p, base=build_config("cmdsr_demo")).degradation == dasr_iso(2)
    with pytest.raises(ConfigError, match=r"degradation in --set: unknown training distribution 'iso'; valid: cmdsr"):
        apply_overrides(Config(), ["degradation=iso"])


def test_flatten_is_dotted_and_complete():
    flat = flatten(Config())
    assert flat["optim.lr"] == 1e-4 and flat["degradation.kernel"] == "iso"
    assert all(not isinstance(v, dict) for v in flat.values())
    assert len(flat) == sum(len(v) if isinstance(v, dict) else 1 for v in yaml.safe_load(dump_yaml(Config())).values())


def test_paper_presets_hold_paper_settings():
    c = PRESETS["cmdsr_paper"]()
    assert (c.scale, c.data.tasks_per_step, c.model.support_size, c.data.patch_size, c.optim.t0) == (4, 8, 20, 48, 10)
    assert c.data.patches_per_task == 40
    assert c.degradation.kernel_size == 15 and c.degradation.noise_range == [0.0, 75.0]
    assert (c.optim.lr, c.optim.lr_condition) == (1e-3, 1e-4)  # §IV-A; the official code uses 1e-4 for both
    code = PRESETS["cmdsr_code"]()
    assert (code.optim.lr, code.degradation.downsampler, code.degradation.rounding) == (1e-4, "cv2_cubic", "floor")
    assert code.degradation.sigma_range == [0.2, 4.0] and code.degradation.noise_range == [0.0, 74.0]
    assert to_dict(code)["data"] == to_dict(c)["data"] and to_dict(code)["model"] == to_dict(c)["model"]
    dasr, dasr_code = PRESETS["dasr_paper"](), PRESETS["dasr_code"]()
    assert (dasr.model.name, dasr.data.tasks_per_step, dasr.data.patches_per_task, dasr.model.moco_queue) == (
        "dasr",
        32,
        2,
        8192,
    )
    assert (dasr.optim.pretrain_steps, dasr.optim.lr_pretrain, dasr.train.steps) == (97_000, 1e-3, 582_000)
    assert dasr.optim.pretrain_milestones == [58_200] and dasr.optim.pretrain_shared_optimizer
    assert dasr.degradation.sigma_range == [0.2, 4.0] == dasr_code.degradation.sigma_range  # x4: the same
    from blindsr.config.presets import dasr_code as code_at
    from blindsr.config.presets import dasr_paper as paper_at

    assert paper_at(2).degradation.sigma_range == [0.2, 2.0] and code_at(2).degradation.sigma_range == [0.2, 4.0]
    d = PRESETS["cdsr_paper"]()
    assert d.degradation.kernel_size == 21 and d.degradation.downsampler == "sfold"
    assert d.data.tasks_per_step == 32 and d.model.moco_queue == 8192
    assert textwrap.dedent(dump_yaml(d)).startswith("name: cdsr_x4")


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("degradation.noise_range=[75, 0]", r"degradation.noise_range in --set: expected \[low, high\]"),
        ("degradation.kernel_size=14", r"degradation.kernel_size in --set: a centred kernel needs an odd size"),
        ("degradation.jpeg_prob=1.5", r"degradation.jpeg_prob in --set: is a probability"),
        ("data.patch_size=0", r"data.patch_size in --set: must be >= 1"),
        ("scale=0", r"scale in --set: must be an integer in \[1, 8\]"),
    ],
)
def test_semantic_checks_name_the_key(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        apply_overrides(Config(), [override])


def test_the_driver_resolves_copies_and_leaves_the_validated_config_alone(tmp_path, monkeypatch):
    """fit() and a sweep work on resolved copies (absolute paths, the device decided); the caller's config
    is the one it validated, so a second fit of the same object resolves the same way."""
    from blindsr.train.launch import resolve_devices, resolve_paths

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = build_config("cmdsr_smoke", overrides=["scaling.use_gpu=false"])
    before = to_dict(cfg)
    resolved = resolve_devices(resolve_paths(cfg, tmp_path))
    assert to_dict(cfg) == before
    assert resolved.train.storage_path == str(tmp_path.resolve() / "outputs" / "ray")
    assert resolved.tracking.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert resolved.scaling.use_gpu is False
    fp16 = build_config("cmdsr_smoke", overrides=["train.precision=fp16", "scaling.use_gpu=true"])
    assert resolve_devices(fp16).scaling.use_gpu is True


@pytest.mark.parametrize(
    "preset, overrides, key",
    [
        ("cmdsr_paper", ["data.patches_per_task=3"], "data.patches_per_task"),  # 2n = 40
        ("cmdsr_paper", ["data.tasks_per_step=1"], "data.tasks_per_step"),  # the task-contrastive term
        ("cdsr_paper", ["data.patches_per_task=1"], "data.patches_per_task"),  # a query/key pair
        ("cmdsr_paper", ["scale=5"], "scale"),  # pixel-shuffle upsamplers: x2, x3, x4
        ("cmdsr_paper", ["model.basenet=idn", "model.n_feats=40"], "model.n_feats"),
        ("cdsr_paper", ["train.val_protocol=gaussian8", "scale=8"], "train.val_protocol"),
    ],
)
def test_rules_that_span_sections_are_refused_by_the_python_api_naming_the_key(preset, overrides, key):
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)} in --set: "):
        build_config(preset, overrides=overrides)


def test_build_config_refuses_a_model_key_the_model_does_not_read_but_not_a_presets():
    with pytest.raises(ConfigError, match=r"model\.n_blocks: not used by model 'vdsr'"):
        build_config("cmdsr_paper", overrides=["model.name=vdsr", "model.n_blocks=5"])
    assert build_config("cdsr_paper", overrides=["model.name=dasr"]).model.name == "dasr"  # preset values pass


@pytest.mark.parametrize("name", sorted(n for n in PRESETS if n.endswith(("_paper", "_code", "_large"))))
def test_paper_presets_size_their_degradation_actors(name):
    assert PRESETS[name]().scaling.degrade_actors == "auto"  # a paper run on real data must not starve by default
