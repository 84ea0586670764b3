"""The child's output read as events: a stdout line -> a JSON-lines protocol event (`RootletSegLogic.progress`), an
event -> (percent, status text) for a progress bar and a status line, and the one telling line of a failed
command's stderr.
"""

from __future__ import annotations

import json

# ------------------------------------------------------------------------------------------------ events


def parse_line(line: str) -> dict:
    """One stdout line -> protocol event dict. A line that is not a protocol object becomes {"type": "log"}."""
    text = line.rstrip("\r\n")
    try:
        obj = json.loads(text)
    except ValueError:
        return {"type": "log", "message": text}
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        return {"type": "log", "message": text}
    return obj


def describe_event(event: dict) -> tuple:
    """(percent 0..100 or None, status text) for a progress bar and a status line."""
    kind = event.get("type")
    if kind == "progress":
        fraction = event.get("fraction")
        if fraction is None and event.get("total"):
            fraction = event.get("done", 0) / event["total"]
        percent = None if fraction is None else int(round(100 * max(0.0, min(1.0, float(fraction)))))
        stage = event.get("stage", "")
        message = event.get("message", "")
        text = f"{stage}: {message}" if message else str(stage)
        return percent, text
    if kind == "warning":
        return None, "Warning: " + str(event.get("message", ""))
    if kind == "error":
        return None, "Error: " + str(event.get("message", ""))
    if kind == "result":
        return 100, "Done."
    if kind == "finished":
        if event.get("cancelled"):
            return None, "Cancelled."
        return (100, "Done.") if event.get("returncode") == 0 else (None, "Failed: " + str(event.get("error") or ""))
    return None, str(event.get("message", ""))


def last_error_line(stderr_text: str) -> str:
    """The most telling line of a failed command's stderr: its `rootletseg: error:` sentence, else the last line."""
    lines = [line.strip() for line in stderr_text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("rootletseg: error:"):
            return line[len("rootletseg: error:"):].strip()
    return lines[-1] if lines else ""
