"""Errors in OpenAI's JSON shape: {"error": {"message", "type", "param", "code"}}.

Every failure the server answers, whatever raised it (our validation, FastAPI's routing, an engine
exception), leaves through api_error_response(), so clients (the `openai` package maps the status to
its exception class and reads error.message) always see the same shape.
"""
from __future__ import annotations

from typing import Dict, Optional

from starlette.responses import JSONResponse

__all__ = ["APIError", "api_error_response", "bad_request", "context_length_exceeded", "ERROR_TYPES"]

# the `type` OpenAI gives each status (server-side states we add: queue_full, shutting_down)
ERROR_TYPES: Dict[int, str] = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    """An error the server answers with: HTTP status, message, OpenAI error type, param, code."""

    def __init__(self, status: int, message: str, *, param: Optional[str] = None, code: Optional[str] = None,
                 type: Optional[str] = None, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def api_error_response(status: int, message: str, **kw) -> JSONResponse:
    return APIError(status, message, **kw).response()


def bad_request(message: str, param: Optional[str] = None, code: Optional[str] = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def context_length_exceeded(n_ctx: int, n_prompt: int, n_completion: Optional[int], param: str) -> APIError:
    """OpenAI's wording and code for a request that does not fit in the context."""
    what = "messages" if param == "messages" else "prompt"
    if n_completion is None:
        msg = (f"This model's maximum context length is {n_ctx} tokens. However, your {what} resulted in "
               f"{n_prompt} tokens. Please reduce the length of the {what}.")
    else:
        msg = (f"This model's maximum context length is {n_ctx} tokens. However, you requested "
               f"{n_prompt + n_completion} tokens ({n_prompt} in the {what}, {n_completion} in the completion). "
               f"Please reduce the length of the {what} or completion.")
    return APIError(400, msg, param=param, code="context_length_exceeded")
