"""Successive halving within a time budget: every trial trains the first rung's share of its steps, the
best 1/eta on the validation metric go on (from their checkpoints) to the next rung's share, and so on
until the survivors have trained all their steps. Training is a function passed in, so this module
decides only what trains next. The budget is checked before each training; when it runs out and no trial
has finished, the leader is trained to the end anyway, so there is always a finished trial to choose."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tunewright.sweep.grid import Trial, rung_shares, survivors
from tunewright.sweep.table import RungResult, TrialRecord, TrialStatus


@dataclass(frozen=True)
class RungOutcome:
    steps: int  # trained by the end of this rung
    planned_steps: int
    finished: bool  # nothing left to train: all its steps, or early stopping ended it
    metric: float
    seconds: float


# (trial, share of its steps to reach, resume from its checkpoint) -> what that training gave
TrainRung = Callable[[Trial, float, bool], RungOutcome]
# called once a trial will train no more, with whether it finished (to free its checkpoints)
Retire = Callable[[Trial, bool], None]


@dataclass
class _Progress:
    trial: Trial
    index: int
    rungs: list[RungResult] = field(default_factory=list)
    planned_steps: int | None = None
    finished: bool = False
    eliminated: bool = False

    def add(self, rung: int, outcome: RungOutcome) -> None:
        self.rungs.append(RungResult(rung, outcome.steps, outcome.metric, outcome.seconds))
        self.planned_steps, self.finished = outcome.planned_steps, outcome.finished

    def rank_key(self) -> tuple[float, int]:
        """Best first: the highest metric after its latest rung, then grid order."""
        return (-(self.rungs[-1].metric if self.rungs else 0.0), self.index)

    def record(self) -> TrialRecord:
        status: TrialStatus = ("finished" if self.finished else "eliminated" if self.eliminated
                               else "unfinished" if self.rungs else "not run")
        return TrialRecord(self.trial.name, self.trial.settings, status, self.planned_steps, list(self.rungs))


@dataclass(frozen=True)
class HalvingResult:
    trials: list[TrialRecord]
    chosen: str
    shares: list[float]
    over_budget: bool


def successive_halving(trials: list[Trial], eta: int, budget_seconds: float, train_rung: TrainRung,
                       retire: Retire, clock: Callable[[], float] = time.monotonic) -> HalvingResult:
    deadline = clock() + budget_seconds
    shares = rung_shares(len(trials), eta)
    progress = [_Progress(trial, index) for index, trial in enumerate(trials)]
    alive = list(progress)
    for rung, share in enumerate(shares):
        if not _train_rung(alive, rung, share, train_rung, retire, lambda: clock() >= deadline):
            break
        if rung < len(shares) - 1:
            ranked = sorted(alive, key=_Progress.rank_key)
            alive = ranked[:survivors(len(alive), eta)]
            for item in ranked[len(alive):]:
                item.eliminated = True
                retire(item.trial, False)
    over_budget = not any(item.finished for item in progress)
    if over_budget:  # the budget ran out first: the trial that got furthest and scored best is finished
        leader = min((item for item in alive if item.rungs), key=lambda item: (-len(item.rungs), item.rank_key()))
        leader.add(len(leader.rungs), train_rung(leader.trial, 1.0, True))
        retire(leader.trial, True)
    for item in alive:
        if not item.finished:
            retire(item.trial, False)
    chosen = min((item for item in progress if item.finished), key=_Progress.rank_key)
    return HalvingResult([item.record() for item in progress], chosen.trial.name, shares, over_budget)


def _train_rung(alive: list[_Progress], rung: int, share: float, train_rung: TrainRung, retire: Retire,
                out_of_time: Callable[[], bool]) -> bool:
    """Train every unfinished trial in `alive` to `share` of its steps, the most promising first; False
    if the budget ran out on the way."""
    for item in sorted(alive, key=_Progress.rank_key):
        if item.finished:
            continue
        if out_of_time():
            return False
        item.add(rung, train_rung(item.trial, share, bool(item.rungs)))
        if item.finished:
            retire(item.trial, True)
    return True
