"""MetaWorld v3 task names (without the "-v3" suffix) and their difficulty groups, as in the
DP3 and SDM papers (Easy 28 / Medium 11 / Hard 6 / Very hard 5)."""

from __future__ import annotations

EASY = (
  "button-press",
  "button-press-topdown",
  "button-press-topdown-wall",
  "button-press-wall",
  "coffee-button",
  "dial-turn",
  "door-close",
  "door-lock",
  "door-open",
  "door-unlock",
  "drawer-close",
  "drawer-open",
  "faucet-close",
  "faucet-open",
  "handle-press",
  "handle-press-side",
  "handle-pull",
  "handle-pull-side",
  "lever-pull",
  "plate-slide",
  "plate-slide-back",
  "plate-slide-back-side",
  "plate-slide-side",
  "reach",
  "reach-wall",
  "window-close",
  "window-open",
  "peg-unplug-side",
)
MEDIUM = (
  "basketball",
  "bin-picking",
  "box-close",
  "coffee-pull",
  "coffee-push",
  "hammer",
  "peg-insert-side",
  "push-wall",
  "soccer",
  "sweep",
  "sweep-into",
)
HARD = ("assembly", "hand-insert", "pick-out-of-hole", "pick-place", "push", "push-back")
VERY_HARD = ("shelf-place", "disassemble", "stick-pull", "stick-push", "pick-place-wall")

GROUPS = {"easy": EASY, "medium": MEDIUM, "hard": HARD, "very_hard": VERY_HARD}
GROUP_LABELS = {"easy": "Easy", "medium": "Medium", "hard": "Hard", "very_hard": "Very hard"}
TASKS = tuple(sorted(EASY + MEDIUM + HARD + VERY_HARD))
