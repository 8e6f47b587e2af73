"""Structured logs: one JSON object per line, with the camera of the worker."""

from __future__ import annotations


def test_json_logs_carry_the_camera_of_the_worker(capsys):
    import json
    import logging

    from vigil.edge.logs import configure_logging, tag_camera

    configure_logging(as_json=True)
    try:
        tag_camera("cam-7")
        logging.getLogger("vigil.test").warning("stream lost")
        logging.getLogger("vigil.test").info("explicit", extra={"camera": "other"})
        lines = [json.loads(x) for x in capsys.readouterr().err.strip().splitlines()]
    finally:
        logging.getLogger().handlers.clear()
    assert lines[0]["camera"] == "cam-7" and lines[0]["message"] == "stream lost" and lines[0]["level"] == "warning"
    assert lines[1]["camera"] == "other"
