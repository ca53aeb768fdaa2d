from service.config import PROJECT_ROOT, Settings


def test_every_setting_is_documented() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`EMOTION_{name.upper()}`" not in readme]
    assert not missing, f"settings missing from the README: {missing}"
