"""Ground-plane alarm rules: one module per rule, one lifecycle, one engine.

- :mod:`.lifecycle`: :class:`Lifecycle` (start / update / end, alarm ids), :class:`Observation`,
  the shared lifecycle settings (:class:`LifecycleConfig`);
- :mod:`.pairs`: :class:`~.pairs.PairLifecycle`, the same lifecycle in numpy arrays for pair
  rules with many pairs a frame (the distance rule);
- :mod:`.base`: the :class:`Rule` interface and the per-frame :class:`FrameView`;
- one module per rule, each with its configuration model and its metric: :mod:`.distance`,
  :mod:`.contact`, :mod:`.occupancy`, :mod:`.density`, :mod:`.queue`, :mod:`.risk`;
- :mod:`.config`: :class:`RulesConfig` and :class:`ZoneConfig` assembled from the rules' models;
- :mod:`.engine`: :class:`RulesEngine`, every configured rule over each frame.

Adding a rule: a new module here (config model, :class:`Rule` subclass with its
``observe``), its entry in ``engine.RULES`` and its field in ``config.RulesConfig``; a new
event type also needs its payload model in :mod:`vigil.alerts.payloads`.
"""

from .base import FrameView, Rule, ZoneSpec
from .engine import RULES, RulesEngine, visible_ground_bounds
from .lifecycle import Lifecycle, Observation

__all__ = ["RULES", "FrameView", "Lifecycle", "Observation", "Rule", "RulesEngine", "ZoneSpec", "visible_ground_bounds"]
