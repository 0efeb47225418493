"""One measurement in a fresh Python process, so that its peak memory is its own.

    result = run_in_child("tasr.bench.train:measure", job, timeout=600)

The child (`python -m tasr.bench.child`) reads {"function": "module:name", "request": ...} as
JSON on stdin, calls `function(request)` and prints its result (a dict of plain values) as JSON
on the last line of stdout. When it fails, the result is {"error": "..."}: the last line it wrote
to stderr, or what killed it.
"""

import importlib
import json
import subprocess
import sys


def run_in_child(function: str, request, timeout: float | None = None, env: dict | None = None) -> dict:
    """`function(request)` ("package.module:name") in a new interpreter; its result or {"error": reason}."""
    message = json.dumps({"function": function, "request": request})
    try:
        child = subprocess.run([sys.executable, "-m", "tasr.bench.child"], input=message, capture_output=True,
                               text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"took more than {timeout:.0f} s"}
    if child.returncode != 0:
        last = (child.stderr.strip().splitlines() or ["no message"])[-1]
        if "out of memory" in child.stderr.lower() or child.returncode == -9:
            return {"error": f"out of memory (exit {child.returncode}): {last[:160]}"}
        return {"error": f"exit {child.returncode}: {last[:200]}"}
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    message = json.loads(sys.stdin.read())
    module, name = message["function"].split(":")
    result = getattr(importlib.import_module(module), name)(message["request"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
