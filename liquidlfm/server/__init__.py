"""An OpenAI-compatible HTTP server over the batch engine: `liquidlfm serve MODEL`.

    liquidlfm serve LiquidAI/LFM2-350M-GGUF --port 8000          # or python -m liquidlfm serve ...
    curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
         -d '{"model": "LFM2-350M-GGUF", "messages": [{"role": "user", "content": "Hi"}]}'

Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health (README,
"Server"). Modules: app (routes, limits, streaming; create_app), protocol (request validation),
tools (LFM2 tool calls <-> OpenAI tool_calls), errors (OpenAI-shaped errors), runner (uvicorn with a
draining shutdown; serve, build_server). Needs the `server` extra: pip install 'liquidlfm[server]'.
"""
from .app import ServerSettings, ServerState, create_app
from .runner import DrainingServer, build_server, serve

__all__ = ["create_app", "ServerSettings", "ServerState", "serve", "build_server", "DrainingServer"]
