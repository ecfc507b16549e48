"""Console logs for ``gateway dev`` on a terminal: readable, coloured on request, still masked."""

from __future__ import annotations

import io
import logging
import re
import sys
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from app.cli import cli
from app.observability.logging import (
    MASK,
    ConsoleFormatter,
    LogFormat,
    RedactionFilter,
    colour_wanted,
    console_handler,
    resolve_log_format,
    uvicorn_log_config,
)

JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhdXRoMHwxMjMifQ."
    "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
)
REFRESH = "v1.MRrTbNTiMn-dV5Vd1H-sT2cyL8hqTnplFlYdpEYSRhQ2UnwP6V4xB0a"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

ACCESS_FIELDS: dict[str, Any] = {
    "request_id": "3f2a9c",
    "method": "GET",
    "route": "/venues/{venue_id}",
    "path": "/venues/42",
    "status": 200,
    "duration_ms": 12.5,
    "client_ip": "127.0.0.1",
    "sub": None,
}


class FakeTerminal(io.StringIO):
    """A stream that says it is a TTY."""

    def isatty(self) -> bool:
        return True


def record(
    message: str,
    *args: object,
    level: int = logging.INFO,
    name: str = "app.access",
    extra: dict[str, Any] | None = None,
    exc_info: Any = None,
) -> logging.LogRecord:
    """A record as ``logging.getLogger(name).log(level, message, *args, extra=extra)`` makes it."""
    return logging.getLogger(name).makeRecord(
        name, level, __file__, 1, message, args, exc_info, extra=extra
    )


def written(rec: logging.LogRecord, *, colour: bool = False) -> str:
    """What the console handler (filters included) writes for ``rec``."""
    stream = io.StringIO()
    console_handler(stream, colour=colour).handle(rec)
    return stream.getvalue()


def access_record(level: int = logging.INFO, status: int = 200) -> logging.LogRecord:
    fields = {**ACCESS_FIELDS, "status": status}
    return record("%s %s %s", "GET", "/venues/{venue_id}", status, level=level, extra=fields)


class TestAccessLine:
    def test_time_level_logger_message_then_fields(self) -> None:
        line = written(access_record())
        assert re.fullmatch(
            r"\d\d:\d\d:\d\d\.\d{3} INFO     app\.access  GET /venues/\{venue_id\} 200  "
            r"request_id=3f2a9c method=GET route=/venues/\{venue_id\} path=/venues/42 "
            r"status=200 duration_ms=12\.5 client_ip=127\.0\.0\.1\n",
            line,
        ), line
        assert "sub=" not in line, "an empty field is left out"

    def test_no_colour_unless_asked(self) -> None:
        assert "\x1b" not in written(access_record())

    def test_colour_marks_the_level_and_changes_nothing_else(self) -> None:
        plain = written(access_record())
        coloured = written(access_record(), colour=True)
        assert "\x1b[32mINFO    \x1b[0m" in coloured
        assert ANSI.sub("", coloured)[12:] == plain[12:]  # the time may have ticked
        warning = written(access_record(logging.WARNING, 503), colour=True)
        assert "\x1b[33mWARNING \x1b[0m" in warning

    def test_values_that_are_not_one_word_are_quoted(self) -> None:
        line = written(record("hello", name="app", extra={"note": 'a "b" c', "tags": ["x"]}))
        assert 'note="a \\"b\\" c"' in line
        assert 'tags="[\\"x\\"]"' in line

    def test_control_characters_cannot_reach_the_terminal(self) -> None:
        fields = {**ACCESS_FIELDS, "path": "/nope\x1b[31mRED\nFAKE 200"}
        line = written(record("GET %s 404", "unmatched\r", extra=fields), colour=False)
        assert "\x1b" not in line
        assert "\r" not in line
        assert line.count("\n") == 1
        assert "\\u001b[31mRED" in line

    def test_a_traceback_keeps_its_lines(self) -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            line = written(record("failed", name="app", exc_info=sys.exc_info()))
        first, *rest = line.splitlines()
        assert first.endswith("failed")
        assert rest[0] == "Traceback (most recent call last):"
        assert rest[-1] == "ValueError: boom"


class TestRedaction:
    @pytest.mark.parametrize("colour", [False, True])
    def test_tokens_in_the_message_are_masked(self, colour: bool) -> None:
        rec = record("login with %s then %s", f"Bearer {JWT}", REFRESH, name="app")
        line = written(rec, colour=colour)
        assert JWT not in line
        assert REFRESH not in line
        assert f"Bearer {MASK}" in line

    @pytest.mark.parametrize("colour", [False, True])
    def test_tokens_in_fields_are_masked(self, colour: bool) -> None:
        fields = {
            "authorization": f"Bearer {JWT}",
            "refresh_token": REFRESH,
            "header": f"Bearer {JWT}",
            "note": f"rotated {REFRESH}",
        }
        line = written(record("refreshed", name="app", extra=fields), colour=colour)
        assert JWT not in line
        assert REFRESH not in line
        plain = ANSI.sub("", line)
        assert f"authorization={MASK}" in plain
        assert f"refresh_token={MASK}" in plain
        assert f'header="Bearer {MASK}"' in plain
        assert f'note="rotated {MASK}"' in plain

    def test_the_formatter_masks_even_without_the_filter(self) -> None:
        try:
            raise ValueError(f"bad token {JWT}")
        except ValueError:
            rec = record("token %s", REFRESH, name="app", exc_info=sys.exc_info())
        rec.header = f"Bearer {JWT}"
        line = ConsoleFormatter(colour=True).format(rec)
        assert JWT not in line
        assert REFRESH not in line

    def test_the_handler_and_the_uvicorn_config_carry_the_redaction_filter(self) -> None:
        handler = console_handler(io.StringIO())
        assert any(isinstance(f, RedactionFilter) for f in handler.filters)
        config = uvicorn_log_config("info", LogFormat.CONSOLE)
        assert config["handlers"]["stdout"]["filters"] == ["context", "redact"]
        assert config["handlers"]["stdout"]["formatter"] == "console"


class TestChoosing:
    def test_auto_is_json_when_stdout_is_not_a_terminal(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert resolve_log_format("auto", io.StringIO()) is LogFormat.JSON
        monkeypatch.setattr(sys, "stdout", io.StringIO())
        assert resolve_log_format(LogFormat.AUTO) is LogFormat.JSON
        config = uvicorn_log_config("info", "auto")
        assert list(config["formatters"]) == ["json"]
        assert config["formatters"]["json"]["()"].endswith("JsonLineFormatter")

    def test_auto_is_console_on_a_terminal(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("NO_COLOR", raising=False)
        assert resolve_log_format("auto", FakeTerminal()) is LogFormat.CONSOLE
        monkeypatch.setattr(sys, "stdout", FakeTerminal())
        config = uvicorn_log_config("info", "auto")
        assert config["formatters"] == {
            "console": {"()": "app.observability.logging.ConsoleFormatter", "colour": True}
        }

    def test_an_explicit_choice_wins_and_serve_stays_json(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert resolve_log_format("json", FakeTerminal()) is LogFormat.JSON
        assert resolve_log_format("console", io.StringIO()) is LogFormat.CONSOLE
        monkeypatch.setattr(sys, "stdout", FakeTerminal())
        assert list(uvicorn_log_config("info")["formatters"]) == ["json"]

    @pytest.mark.parametrize(
        ("stream", "environ", "expected"),
        [
            (FakeTerminal(), {}, True),
            (FakeTerminal(), {"NO_COLOR": "1"}, False),
            (FakeTerminal(), {"NO_COLOR": ""}, True),  # no-color.org: only a non-empty value
            (io.StringIO(), {}, False),
        ],
    )
    def test_colour_on_a_terminal_unless_no_color(
        self, stream: io.StringIO, environ: dict[str, str], expected: bool
    ) -> None:
        assert colour_wanted(stream, environ) is expected

    def test_no_color_reaches_the_uvicorn_config(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sys, "stdout", FakeTerminal())
        monkeypatch.setenv("NO_COLOR", "1")
        config = uvicorn_log_config("info", "console")
        assert config["formatters"]["console"]["colour"] is False


class TestDevCommand:
    """``gateway dev`` hands the chosen format to the gateway's uvicorn (servers faked)."""

    @pytest.fixture
    def configs(self, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []

        class FakeServer:
            def __init__(self, config: dict[str, Any]) -> None:
                self.config = config

            async def serve(self) -> None:
                return None

        def fake_config(app: object, **options: Any) -> dict[str, Any]:
            seen.append(options)
            return options

        monkeypatch.setattr(uvicorn, "Config", fake_config)
        monkeypatch.setattr(uvicorn, "Server", FakeServer)
        monkeypatch.setattr("app.main.create_app", lambda settings: object())
        monkeypatch.setenv("GATEWAY_ENV", "local")  # dev sets it; restored afterwards
        monkeypatch.delenv("GATEWAY_LOG_FORMAT", raising=False)
        return seen

    @staticmethod
    def gateway_formatters(configs: list[dict[str, Any]]) -> list[str]:
        gateway = [options for options in configs if "log_config" in options]
        assert len(gateway) == 1
        return list(gateway[0]["log_config"]["formatters"])

    @pytest.mark.parametrize(
        ("args", "env", "expected"),
        [
            ([], {}, ["json"]),  # auto, and the runner's stdout is no terminal
            (["--log-format", "console"], {}, ["console"]),
            (["--log-format", "JSON"], {}, ["json"]),
            ([], {"GATEWAY_LOG_FORMAT": "console"}, ["console"]),
        ],
    )
    def test_log_format(
        self,
        configs: list[dict[str, Any]],
        args: list[str],
        env: dict[str, str],
        expected: list[str],
    ) -> None:
        result = CliRunner().invoke(
            cli, ["dev", "--port", "18600", "--emulator-port", "18601", *args], env=env
        )
        assert result.exit_code == 0, result.output
        assert self.gateway_formatters(configs) == expected

    def test_serves_and_prints_the_example_spa(
        self, configs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        built: list[Any] = []
        monkeypatch.setattr("app.main.create_app", lambda settings: built.append(settings))
        result = CliRunner().invoke(
            cli, ["dev", "--port", "18600", "--emulator-port", "18601", "--spa-port", "18602"]
        )
        assert result.exit_code == 0, result.output
        assert "example SPA             http://127.0.0.1:18602  (cookie mode)" in result.output
        assert [c["port"] for c in configs] == [18601, 18600, 18602]
        assert "http://127.0.0.1:18602" in built[0].cors_origins
