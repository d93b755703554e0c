"""Settings: one definition behind the CLI, the environment, the pytest options and the docs."""

from __future__ import annotations

import pytest

from mock_server.cli import build_parser, settings_from_args
from mock_server.config import SETTINGS, Settings
from mock_server.settings_table import markdown_table


def test_an_unknown_variable_is_refused_with_the_closest_setting() -> None:
    with pytest.raises(ValueError, match=r"BRIA_MOCK_PROGRES_POLLS.*did you mean progress_polls"):
        Settings.from_env({"BRIA_MOCK_PROGRES_POLLS": "3"})


def test_a_name_close_to_nothing_lists_every_setting() -> None:
    with pytest.raises(ValueError, match=r"not a bria-mock setting; settings: host, port, "):
        Settings.from_env({"BRIA_MOCK_ZZZ": "1"})


def test_variables_that_are_not_settings_of_the_fake_are_left_alone() -> None:
    assert Settings.from_env({"BRIA_MOCK_FUZZ": "large", "OTHER": "x"}) == Settings()


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("BRIA_MOCK_RATE_LIMIT", "fre", "free, payg, enterprise, off, or a number of requests per minute"),
        ("BRIA_MOCK_MAX_JOBS", "lots", "a whole number, 0 or more"),
        ("BRIA_MOCK_PROGRESS_SECONDS", "-1", "a number, 0 or more"),
        ("BRIA_MOCK_ALLOW_REMOTE_FETCH", "maybe", "true or false"),
        ("BRIA_MOCK_PORT", "70000", "a port number, 0 to 65535"),
    ],
)
def test_a_malformed_value_names_the_allowed_form(variable: str, value: str, allowed: str) -> None:
    with pytest.raises(ValueError) as refused:
        Settings.from_env({variable: value})

    assert f"{variable}={value!r}" in str(refused.value)
    assert f"expected {allowed}" in str(refused.value)


def test_an_unknown_override_in_code_is_refused() -> None:
    with pytest.raises(ValueError, match="did you mean max_jobs"):
        Settings.from_env({}, max_job=3)


def test_a_bad_rate_limit_in_code_is_refused_with_the_allowed_form() -> None:
    with pytest.raises(ValueError, match=r"rate_limit='fre': expected free, payg"):
        Settings(rate_limit="fre")


def test_every_setting_has_a_serve_option_that_reaches_it() -> None:
    for setting in SETTINGS:
        value = next(iter(setting.choices)) if setting.choices else _sample(setting.name, setting.kind)
        args = build_parser().parse_args(["serve", setting.flag, value])

        parsed = getattr(settings_from_args(args), setting.name)

        expected = setting.choices[value] if setting.choices else setting.parse(value)
        assert parsed == expected, setting.name


def _sample(name: str, kind: str) -> str:
    if name == "state":  # (a setting with a form of its own)
        return "redis://127.0.0.1:6379/0"
    return {"int": "7", "float": "2.5", "bool": "true", "str": "free", "tuple[str, ...]": "a"}[kind]


def test_a_bad_option_value_names_the_allowed_form(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--rate-limit", "fre"])

    assert "argument --rate-limit: 'fre': expected free, payg, enterprise" in capsys.readouterr().err


def test_a_mistyped_option_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--progres-polls", "3"])

    assert "did you mean --progress-polls?" in capsys.readouterr().err


def test_the_pytest_option_refuses_an_unknown_setting(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(bria_mock):\n    pass\n")

    result = pytester.runpytest("-p", "no:xdist", "--bria-mock-setting", "progres_polls=3")

    assert result.ret != 0
    result.stdout.fnmatch_lines(["*progres_polls*did you mean progress_polls*"])


def test_the_pytest_ini_refuses_a_malformed_value(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nbria_mock_settings =\n    rate_limit=fre\n")
    pytester.makepyfile("def test_it(bria_mock):\n    pass\n")

    result = pytester.runpytest("-p", "no:xdist")

    assert result.ret != 0
    result.stdout.fnmatch_lines(["*BRIA_MOCK_RATE_LIMIT='fre'*expected free, payg, enterprise*"])


def test_the_settings_table_shows_every_name_option_variable_and_default() -> None:
    table = markdown_table()

    for setting in SETTINGS:
        row = next(line for line in table.splitlines() if line.startswith(f"| `{setting.name}` |"))
        assert setting.flag in row and setting.env_name in row and setting.default_text in row
