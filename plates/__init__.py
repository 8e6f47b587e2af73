"""Licence plates: localise, rectify and read plates, vote the readings of a pass into one
transit, check watch lists, keep pseudonymised transit records and masked evidence.

Modules (import the one you need; this file imports nothing):

- :mod:`.reader`: :class:`~vigil.plates.reader.PlateReader` (localise, rectify, read, choose), ``load_image``;
- :mod:`.localise`: text lines → one- and two-line plate quads, rectification, the EU band, read quality;
- :mod:`.ocr`: PP-OCRv4 text detection / recognition (CTC probabilities) and fixed-slot ONNX recognisers;
- :mod:`.formats`: the table of plate formats by country (Italian kinds, foreign formats, EU band codes);
- :mod:`.ctc` and :mod:`.decode`: CTC decoding constrained to the formats, the country-aware decision
  with per-character and calibrated plate confidences;
- :mod:`.grammar`: the text-only view of the formats (normalisation, confusable-character keys);
- :mod:`.synth`, :mod:`.synth_formats`: seeded synthetic plates (Italian kinds and foreign formats,
  typefaces, perspective, blur, night IR, dirt, occlusion, two-line plates) for tests and benchmarks;
- :mod:`.pipeline`: :class:`~vigil.plates.pipeline.PlatePipeline`, the per-camera OCR queue,
  pass voting, gate / traffic modes, hit alarms and transit event specs;
- :mod:`.watchlists`: SCNTT-style CSV watch lists, reloaded on change;
- :mod:`.evidence`: the access-controlled store of plate crops referenced by id;
- :mod:`.transits`: transit records in SQLite or PostgreSQL (``open_transit_store``), retention;
- :mod:`.pseudonym`: the pseudonymisation key (``load_key``, ``create_key``), keyed pseudonyms
  of plates, plate-free events (``redact_event_payload``);
- :mod:`.cli`: ``vigil plates read``, ``vigil transits ...``, ``vigil watchlist check``
  (``add_commands``).
"""
