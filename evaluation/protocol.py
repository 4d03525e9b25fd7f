"""The paper's evaluation protocol (section 5.1): which catalog runs one evaluation makes, and their ids.

Independent generation (CFG) is the baseline; negative prompting and NAG run on the same videos, captions
and seeds. NAG runs at every beta of the sweep and every caption order; the other two at the first order.
Each setting is one ordinary catalog run, named ``<evaluation id>-<setting>``, so its rows sit in the usual
tables beside every other run.
"""
from __future__ import annotations

from dataclasses import dataclass

from common.methods import METHODS

INDEPENDENT, NEGATIVE_PROMPT, NAG = "independent", "negative-prompt", "nag"
assert {INDEPENDENT, NEGATIVE_PROMPT, NAG} <= set(METHODS)
PAPER_ALPHA, PAPER_BETA, PAPER_STEPS = 4.5, 1.5, 25  # the paper's settings (section 5.1)


@dataclass(frozen=True)
class Setting:
    """One method at one beta (NAG) and caption order."""

    method: str
    order: str
    beta: float | None = None

    @property
    def label(self) -> str:
        """How tables print it: ``independent``, ``negative-prompt``, ``nag beta=1.5 descending``."""
        return f"nag beta={self.beta:g} {self.order}" if self.method == NAG else self.method

    def run_id(self, evaluation_id: str) -> str:
        """The catalog run of this setting: ``<evaluation id>-nag-b1.5-descending`` and the like."""
        tail = f"-b{self.beta:g}" if self.method == NAG else ""
        return f"{evaluation_id}-{self.method}{tail}-{self.order}"


def protocol_settings(betas: tuple[float, ...] = (PAPER_BETA,),
                      orders: tuple[str, ...] = ("descending",)) -> list[Setting]:
    """Independent first (the baseline), negative prompting, then NAG at every (beta, order)."""
    if not betas or not orders:
        raise ValueError("need at least one beta and one order")
    if len(set(betas)) != len(betas) or len(set(orders)) != len(orders):
        raise ValueError(f"betas and orders must not repeat, got {betas} and {orders}")
    if any(b < 0 for b in betas):
        raise ValueError(f"beta must be >= 0, got {betas}")
    return ([Setting(INDEPENDENT, orders[0]), Setting(NEGATIVE_PROMPT, orders[0])]
            + [Setting(NAG, order, float(beta)) for beta in betas for order in orders])
