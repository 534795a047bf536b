"""`--http-port` and `--allow-http` reach the server's options as Triton's flags do: REST on
port 8000 by default, another port when given, none with `--no-allow-http`; and the demo
prints a curl line only when REST is served."""

from __future__ import annotations

from ferroserve import cli
from ferroserve.demo import usage


def http_port(*flags: str) -> int | None:
    args = cli.build_parser().parse_args(["serve", "--model-repository", "models", *flags])
    return cli._shared_options(args, None)["http_port"]  # type: ignore[no-any-return]


def test_http_is_served_on_8000_unless_told_otherwise() -> None:
    assert http_port() == 8000
    assert http_port("--http-port", "9000") == 9000
    assert http_port("--no-allow-http") is None
    assert http_port("--no-allow-http", "--allow-http") == 8000


def test_the_demo_prints_a_curl_line_for_the_http_port() -> None:
    printed = usage("127.0.0.1", 8001, None, 8000)
    assert "curl -s http://127.0.0.1:8000/v2/models/mlp/infer" in printed
    assert "curl" not in usage("127.0.0.1", 8001, None, None)
