"""Index the app with the platform's Python worker and write what the Functions host would receive, as JSON.

Run by `tests/platform/test_worker_index.py` with the Python 3.13 environment that `make worker-venv` builds;
usage:
`python tests/platform/worker_index_probe.py APP_DIR OUT_JSON`. It drives the worker's own entry points:
`azure_functions_runtime.worker_init_request` (imports `function_app.py`, finds the one `FunctionApp`, runs
the worker's parameter and annotation checks, builds the metadata), then `functions_metadata_request`.

The proxy worker that ships with the host passes its generated gRPC message classes to the runtime as the
`protos` property of each request. This probe passes a stand-in whose messages keep their fields as attributes
and whose enum numbers are those of the host's `FunctionRpc.proto`
(https://github.com/Azure/azure-functions-language-worker-protobuf/blob/dev/src/proto/FunctionRpc.proto).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class _Message:
    """A gRPC message: keyword fields become attributes, as in generated protobuf classes."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class BindingInfo(_Message):
    # enum Direction { in = 0; out = 1; inout = 2; }  (`in` is a Python keyword: set below)
    out = 1
    inout = 2
    # enum DataType { undefined = 0; string = 1; binary = 2; stream = 3; }
    undefined = 0
    string = 1
    binary = 2
    stream = 3


setattr(BindingInfo, "in", 0)  # `in` is a Python keyword, so protobuf's generated code sets it this way too
DIRECTIONS = {0: "in", 1: "out", 2: "inout"}
DATA_TYPES = {0: "undefined", 1: "string", 2: "binary", 3: "stream"}


class StatusResult(_Message):
    Failure = 0
    Success = 1
    Cancelled = 2


PROTOS = SimpleNamespace(
    BindingInfo=BindingInfo,
    StatusResult=StatusResult,
    RpcFunctionMetadata=type("RpcFunctionMetadata", (_Message,), {}),
    RpcRetryOptions=type("RpcRetryOptions", (_Message,), {}),
    RpcException=type("RpcException", (_Message,), {}),
    WorkerMetadata=type("WorkerMetadata", (_Message,), {}),
    WorkerInitResponse=type("WorkerInitResponse", (_Message,), {}),
    FunctionMetadataResponse=type("FunctionMetadataResponse", (_Message,), {}),
)


def _request(inner: str, app_dir: Path) -> Any:
    """A StreamingMessage as the proxy worker hands it to the runtime."""
    body = SimpleNamespace(capabilities={}, function_app_directory=str(app_dir))
    return SimpleNamespace(
        request=SimpleNamespace(**{inner: body}),
        properties={"host": "127.0.0.1", "protos": PROTOS},
    )


def _enum(value: Any, names: dict[int, str]) -> str:
    number = int(getattr(value, "value", value) or 0)
    return names[number]


def _retry(options: Any) -> dict[str, Any] | None:
    if options is None:
        return None
    return {
        key: value if isinstance(value, int | str) else str(value) for key, value in vars(options).items()
    }


def _function(metadata: Any) -> dict[str, Any]:
    return {
        "name": metadata.name,
        "entry_point": metadata.entry_point,
        "script_file": metadata.script_file,
        "language": metadata.language,
        "bindings": {
            name: {
                "type": info.type,
                "direction": _enum(info.direction, DIRECTIONS),
                "data_type": _enum(info.data_type, DATA_TYPES),
            }
            for name, info in metadata.bindings.items()
        },
        "raw_bindings": [json.loads(raw) for raw in metadata.raw_bindings],
        "retry_options": _retry(metadata.retry_options),
        "properties": dict(metadata.properties),
    }


async def index(app_dir: Path) -> dict[str, Any]:
    import azure.functions
    import azure_functions_runtime
    from azure_functions_runtime.version import VERSION

    init = await azure_functions_runtime.worker_init_request(_request("worker_init_request", app_dir))
    report: dict[str, Any] = {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "worker_version": VERSION,
        "azure_functions_version": azure.functions.__version__,
        "status": "Success" if init.result.status == StatusResult.Success else "Failure",
        "exception": getattr(getattr(init.result, "exception", None), "message", None),
        "functions": [],
    }
    if report["status"] == "Success":
        listing = await azure_functions_runtime.functions_metadata_request(
            _request("functions_metadata_request", app_dir)
        )
        report["functions"] = [_function(m) for m in listing.function_metadata_results or ()]
    return report


def main(argv: list[str]) -> int:
    app_dir, out = Path(argv[1]).resolve(), Path(argv[2])
    sys.path[0] = str(app_dir)  # the app's directory first on sys.path (not this script's), as in Azure
    report = asyncio.run(index(app_dir))
    out.write_text(json.dumps(report, indent=2))
    return 0 if report["status"] == "Success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
