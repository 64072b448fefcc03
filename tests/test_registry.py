import pytest

from bench.common.errors import HyperbenchError
from bench.models.catalog import count_params, create_model, list_models, model_cfg, param_count


def test_wildcards_and_filters():
    assert list_models("hyper*") == ["hyperres"]
    assert "perlevel" in list_models("*level")
    assert "hyperres" in list_models(adaptive=True)
    assert "hyperres" not in list_models(adaptive=False)


def test_baselines_arrive_through_entry_points():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="hyperbench.models")}
    assert "plain" in names
    assert {"plain", "perlevel"} <= set(list_models())


def test_unknown_model_says_did_you_mean():
    with pytest.raises(HyperbenchError, match="did you mean 'hyperres'"):
        create_model("hyperess")


def test_bad_keyword_is_a_clear_error():
    with pytest.raises(HyperbenchError, match="does not accept"):
        create_model("hyperres", blocks=3)


def test_cfg_records_provenance():
    cfg = model_cfg("hyperres")
    assert cfg.adaptive and cfg.protocol == "joint"
    assert "2206.05970" in cfg.paper and cfg.origin.startswith("https://github.com/ifryed/HyperRes")
    assert set(cfg.tasks) == {"denoise", "dejpeg", "sr"}


def test_created_model_knows_its_cfg_and_kwargs():
    model = create_model("hyperres", meta_blocks=1, width=8)
    assert model.cfg.name == "hyperres" and model.build_kwargs == {"meta_blocks": 1, "width": 8}
    assert count_params(model) > 0


@pytest.mark.parametrize("name", ["hyperres", "perlevel", "adafm", "cfsnet", "cresmd", "hinet", "ffdnet", "noisenet"])
def test_meta_device_count_equals_a_built_model(name):
    kwargs = model_cfg(name).test_kwargs
    assert param_count(name, **kwargs) == count_params(create_model(name, **kwargs))
