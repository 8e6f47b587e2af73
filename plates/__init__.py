"""Licence plates: localise, rectify and read plates, vote the readings of a pass into one
transit, check watch lists, keep pseudonymised transit records and masked evidence.

Modules (import the one you need; this file imports nothing):

- :mod:`.grammar`: Italian plate grammar, normalisation, confusable-character keys;
- :mod:`.ocr`: PP-OCRv4 text detection / recognition and fixed-slot ONNX recognisers (onnxruntime);
- :mod:`.reader`: :class:`~vigil.plates.reader.PlateReader` (localise, rectify, read), ``load_image``;
- :mod:`.synth`: seeded synthetic Italian plates for tests and benchmarks;
- :mod:`.pipeline`: :class:`~vigil.plates.pipeline.PlatePipeline`, the per-camera OCR queue,
  pass voting, gate / traffic modes, hit alarms and transit event specs;
- :mod:`.watchlists`: SCNTT-style CSV watch lists, reloaded on change;
- :mod:`.evidence`: the access-controlled store of plate crops referenced by id;
- :mod:`.transits`: transit records in SQLite or PostgreSQL (``open_transit_store``), keyed
  pseudonyms, retention;
- :mod:`.cli`: ``vigil plates read``, ``vigil transits ...``, ``vigil watchlist check``
  (``add_commands``).
"""
