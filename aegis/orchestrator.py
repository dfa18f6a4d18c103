"""The autonomous loop: collect with the teacher → distil in a child process → switch to the HRM → improve by RL.

The phase and the counters that drive it live in the store (`orchestrator_state`), so a restarted agent resumes
where it was; every phase change, training run, swap, promotion and rejection is an event. Distillation runs as
`train_hrm.py --resume` in a child process (it dies with the agent and resumes from its checkpoint on restart)
while the runner waits (or keeps collecting, with --collect-while-distilling); a failed child is retried with
exponential backoff; a model below the threshold leaves the teacher acting until the store holds twice the decisions
(eight times for TextWorld; at least `trigger` more), and distillation runs again on all of them, starting from that
model's weights: collecting is cheap next to training, and growing geometrically keeps the retraining a constant factor
of the last run.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from aegis.distill import DistillArgs, model_config
from aegis.improve import (
    ImproveConfig,
    ReturnsCache,
    RoundStopped,
    improve_round,
    learner_version,
    modelled_envs,
    optimizer_path,
)
from aegis.registry import PolicySlot
from aegis.state import process_gone, read_rl, write_rl
from aegis.teachers import make_teacher
from agent.env_model import EnvModel
from agent.envs import env_class, make_env
from agent.hrm_policy import HrmPolicy
from agent.rl import RlConfig
from agent.runner import FinishedEpisode, VectorRunner
from data.store import DEFAULT_MODELS, ExperienceStore, absolute_db
from hrm.cli import Range, check_ranges
from hrm.runlog import MetricsLog

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("collect", "distil", "switch", "improve")
LONG_TEXT_GIVE_UP = 2
"""Epochs without a new best held-out agreement or loss after which a long-text env's distillation gives up and asks
for more decisions."""
LONG_TEXT_GROWTH = 8.0
"""How many times its decisions the store holds before a long-text env's next distillation (see --distill-growth)."""


def env_names(envs: str) -> list[str]:
    """Returns the env names of a comma-separated `--envs` value."""
    return [e.strip() for e in envs.split(",") if e.strip()]


@dataclass
class AgentConfig:
    """Run the autonomous agent: collect with the teacher, distil the HRM, switch to it, improve it by RL."""

    db: str = "runs/aegis.db"
    """Experience store: a SQLite file path or any SQLAlchemy URL."""
    envs: str = "FrozenLake-v1,Taxi-v4"
    """Comma-separated environments, stepped in lockstep (each repeated to fill --num-envs)."""
    num_envs: Annotated[int, Range(1)] = 8
    """Environments stepped in lockstep (one policy call per step for all of them)."""
    teacher: str = "auto"
    """auto (gpt2 when its weights are cached or the hub answers, else tiny, saying so), gpt2, distilgpt2,
    gpt2-medium, a save_pretrained folder, tiny (random, offline), oracle or oracle:EPS."""
    temperature: Annotated[float, Range(0, open_low=True)] = 1.0
    """GPT-2 teacher's sampling temperature (exploration)."""
    trigger: Annotated[int, Range(1)] = 1100
    """Teacher decisions in the store that start the first distillation (after one that misses, the next starts once
    the store holds --distill-growth times the decisions it held when that one ended, at least --trigger more)."""
    threshold: Annotated[float, Range(0, 1)] = 0.70
    """Held-out agreement at which a distilled model is activated."""
    distill_epochs: Annotated[int, Range(1)] = DistillArgs.epochs
    """Distillation: passes over the distinct training decisions."""
    distill_batch_size: Annotated[int, Range(1)] = DistillArgs.batch_size
    """Distillation: examples per step."""
    distill_lr: Annotated[float, Range(0, open_low=True)] = DistillArgs.lr
    """Distillation: peak learning rate."""
    distill_distinct: bool = DistillArgs.distinct
    """Distillation: one training row per distinct decision (see train_hrm.py --help)."""
    distill_halt_max_steps: Annotated[int | None, Range(1)] = DistillArgs.halt_max_steps
    """Distillation: the student's ACT bound (None: the preset's)."""
    distill_preset: Literal["auto", "agent-29m", "agent-29m-long"] = "auto"
    """Distillation: the student's architecture (agent-29m-long: 512 input tokens, actions of up to 16 tokens; auto:
    agent-29m-long when an env needs long text, as TextWorld does, agent-29m otherwise)."""
    distill_hidden_size: Annotated[int | None, Range(1)] = DistillArgs.hidden_size
    """Distillation: the student's width (None: the preset's; smaller for quick experiments)."""
    distill_patience: Annotated[int, Range(0)] = DistillArgs.patience
    """Distillation: stop once at the threshold and the best agreement has not improved for this many epochs."""
    distill_continue_loss: Literal["auto", "on", "off"] = "auto"
    """Distillation: train Q-continue on its bootstrapped target as the original HRM does (on), which runs one more
    segment without gradient at every step, or drop it as TRM does (off; Q-continue keeps its initial value, so the
    student halts wherever Q-halt is above that). auto: off for the long student, where that segment made TextWorld
    epochs 1.33× longer (960 decisions, side by side: 178 vs 134 s an epoch, the same held-out agreement and loss) and
    the students halt after one segment anyway; on elsewhere."""
    distill_give_up: Annotated[int | None, Range(0)] = None
    """Distillation: stop below the threshold once neither held-out agreement nor loss has improved for this many
    epochs; the teacher then collects until the store holds --distill-growth times the decisions and distillation
    goes on from that student's weights on all of them. 0: never. Unset (auto): 2 where an env needs the long student
    (TextWorld, where every episode is a new game: past ~10 epochs on 1,100 decisions agreement on unseen games stops
    rising, and more decisions lift it), 0 elsewhere (the default envs' agreement sits on a plateau before it climbs
    to the threshold)."""
    distill_growth: Annotated[float | None, Range(1, open_low=True)] = None
    """Distillation: after a run that missed the threshold, the teacher collects until the store holds this many times
    its decisions (at least --trigger more) before the next run. Unset (auto): 8 where an env needs the long student
    (TextWorld: the teacher plays ~80 decisions a second, distillation trains on ~13 a second; a student that memorises
    1,100 games needs thousands more, and a doubling step costs a whole run for little: session 17's 2,208-decision
    run ended where the 1,104 one had), 2 elsewhere (the default envs revisit their few states)."""
    distill_checkpoint_minutes: Annotated[float, Range(0, open_low=True)] = DistillArgs.checkpoint_minutes
    """Distillation: minutes of training between checkpoints; a kill of the agent loses no more."""
    distill_min_examples: Annotated[int, Range(1)] = DistillArgs.min_examples
    """Distillation: fewer usable teacher decisions than this is an error."""
    collect_while_distilling: bool = False
    """Keep the teacher collecting while train_hrm.py runs. Off by default: on a small machine the runner takes CPU
    from training (measured on 2 cores with the oracle teacher: 10 s a distillation step while collecting, 2 s
    paused) and fills the store with decisions the running distillation never reads."""
    rl_every: Annotated[int, Range(1)] = 50
    """Episodes by the active HRM (acting as the runner's policy) between RL rounds."""
    rl_update: Literal["awr", "ppo"] = RlConfig.update
    """RL: awr (fit the advantage-weighted improvement of the rollout policy) or ppo (the clipped surrogate)."""
    rl_critic: Literal["auto", "model", "gae"] = RlConfig.critic
    """RL: where advantages come from: model (Q by value iteration on the empirical model of every outcome stored),
    gae (GAE on the round's returns with the value head), or auto: per env, the model where the env's text is its
    state (the toy-text games), GAE where it is a partial view (BabyAI, TextWorld)."""
    rl_rollout_decisions: Annotated[int, Range(1)] = RlConfig.rollout_decisions
    """RL: decisions a round's rollouts play and record (each distinct input evaluated once) ..."""
    rl_rollout_minutes: Annotated[float, Range(0, open_low=True)] = RlConfig.rollout_minutes
    """RL: ... or fewer: no rollout episode starts after this many minutes (a slow env's round stays short)."""
    rl_gae_lambda: Annotated[float, Range(0, 1)] = RlConfig.gae_lambda
    """RL: GAE's λ."""
    rl_value_lr: Annotated[float, Range(0, open_low=True)] = RlConfig.value_lr
    """RL: the value head's learning rate."""
    rl_beta: Annotated[float, Range(0, open_low=True)] = RlConfig.beta
    """RL (awr): temperature on the normalised advantages (lower = greedier steps)."""
    rl_floor: Annotated[float, Range(0, 1)] = RlConfig.floor
    """RL (awr): share of the target spread uniformly over the legal actions (exploration)."""
    rl_fit_steps: Annotated[int, Range(1)] = RlConfig.fit_steps
    """RL (awr): optimizer steps fitting a round's target."""
    rl_fit_lr: Annotated[float, Range(0, open_low=True)] = RlConfig.fit_lr
    """RL (awr): learning rate of the fit."""
    rl_kickstart: Annotated[float, Range(0, 1)] = RlConfig.kickstart
    """RL (awr): share of a round's target given to the teacher's choices at the HRM's own inputs, and the weight of
    the teacher's own stored decisions fitted beside them, in envs where the teacher's episodes still return measurably
    more than the round's rollouts (1, the default: DAgger while the teacher plays better; 0: never ask the teacher;
    measured on BabyAI in the README)."""
    rl_ppo_lr: Annotated[float, Range(0, open_low=True)] = RlConfig.ppo_lr
    """RL (ppo): the policy's learning rate."""
    rl_ppo_epochs: Annotated[int, Range(1)] = RlConfig.ppo_epochs
    """RL (ppo): epochs per round (fewer when --rl-ppo-target-kl stops them)."""
    rl_ppo_clip: Annotated[float, Range(0, open_low=True)] = RlConfig.ppo_clip
    """RL (ppo): the ratio clip."""
    rl_ppo_entropy: Annotated[float, Range(0)] = RlConfig.ppo_entropy
    """RL (ppo): weight of the entropy bonus."""
    rl_ppo_kl: Annotated[float, Range(0)] = RlConfig.ppo_kl
    """RL (ppo): weight of KL to the distilled model in the first round (kickstarting) ..."""
    rl_ppo_kl_decay: Annotated[float, Range(0, 1)] = RlConfig.ppo_kl_decay
    """RL (ppo): ... multiplied by this every round."""
    rl_ppo_target_kl: Annotated[float, Range(0, open_low=True)] = RlConfig.ppo_target_kl
    """RL (ppo): stop a round's epochs once the approximate KL to the rollout policy passes this."""
    rl_learner_patience: Annotated[int, Range(1)] = 4
    """RL: a rejected candidate is still what the next round trains from (the served version stays the champion)
    until this many in a row were rejected; then training restarts from the champion (1: always from the
    champion)."""
    eval_episodes: Annotated[int, Range(2)] = 200
    """Fixed-seed evaluation episodes per env for champion/challenger (greedy where the text is the state, which
    decides each distinct state once, so many episodes are cheap; with 20, a run of "within noise" candidates drifted
    downhill)."""
    retry_backoff: Annotated[float, Range(0)] = 30.0
    """Seconds before retrying a failed distillation (doubling after each failure)."""
    max_episodes: Annotated[int | None, Range(1)] = None
    """Stop after this many episodes (of this run)."""
    max_decisions: Annotated[int | None, Range(1)] = None
    """Stop after this many decisions (of this run)."""
    duration: Annotated[float | None, Range(0, open_low=True)] = None
    """Stop after this many seconds (no RL round starts that the last one's length says would end after them)."""
    max_rl_updates: Annotated[int | None, Range(1)] = None
    """Stop after this many RL rounds (of this run)."""
    seed: int = 0
    """Seeds the teacher's sampling, distillation and RL, and (with the decisions already stored) the episodes
    played."""
    device: str | None = None
    """Device of the HRM and GPT-2 (default: the best available)."""
    precision: Literal["auto", "none", "bf16"] = "auto"
    """Autocast dtype of the HRM wherever the agent runs it — acting, distillation, RL rounds and their judge. auto:
    bf16 where the hardware runs it natively (CUDA with bf16, a CPU with AMX or AVX512-BF16: the student acts ~2×
    faster), fp32 elsewhere (a CPU without either emulates bf16 and is slower)."""
    out: str = DEFAULT_MODELS
    """Folder for checkpoints (logs go to its sibling logs/: the distillation child's output, rl-rounds.jsonl)."""
    tensorboard: str | None = None
    """Also write distillation's and the RL rounds' metrics as TensorBoard scalars under this folder."""

    def __post_init__(self):
        check_ranges(self)  # a config built in code gets the same one-line refusal as a flag
        # Paths are resolved once, against the folder the command ran in: a child process and the stored
        # checkpoint paths then mean the same files wherever they are read from.
        self.db = absolute_db(self.db)
        self.out = str(Path(self.out).resolve())
        self.tensorboard = str(Path(self.tensorboard).resolve()) if self.tensorboard else None

    def distill_flags(self) -> list[str]:
        """Returns the train_hrm.py options that carry this config's distillation settings."""
        flags = ["--epochs", str(self.distill_epochs), "--batch-size", str(self.distill_batch_size), "--lr",
                 str(self.distill_lr), "--distinct" if self.distill_distinct else "--no-distinct", "--min-examples",
                 str(self.distill_min_examples), "--patience", str(self.distill_patience), "--give-up",
                 str(self.give_up_epochs()), "--checkpoint-minutes", str(self.distill_checkpoint_minutes),
                 "--mixed-precision", self.precision,
                 "--continue-loss" if self.continue_loss() else "--no-continue-loss"]
        if self.distill_halt_max_steps is not None:
            flags += ["--halt-max-steps", str(self.distill_halt_max_steps)]
        if self.distill_hidden_size is not None:
            flags += ["--hidden-size", str(self.distill_hidden_size)]
        flags += ["--preset", self.student_preset()]
        if self.tensorboard is not None:
            flags += ["--tensorboard", str(Path(self.tensorboard) / "distill")]
        return flags

    def student_preset(self) -> str:
        """Returns the distilled student's preset: the one asked for, or for auto the one the envs need."""
        if self.distill_preset != "auto":
            return self.distill_preset
        return "agent-29m-long" if any(env_class(name).long_text for name in env_names(self.envs)) else "agent-29m"

    def long_student(self) -> bool:
        """Returns whether the distilled student is the long one (agent-29m-long), whose auto settings differ."""
        return self.student_preset() == "agent-29m-long"

    def continue_loss(self) -> bool:
        """Returns whether distillation trains Q-continue: as asked, or for auto, unless the student is the long one."""
        if self.distill_continue_loss != "auto":
            return self.distill_continue_loss == "on"
        return not self.long_student()

    def give_up_epochs(self) -> int:
        """Returns distillation's --give-up: the one asked for, or for auto the one the envs need."""
        if self.distill_give_up is not None:
            return self.distill_give_up
        return LONG_TEXT_GIVE_UP if self.long_student() else 0

    def growth(self) -> float:
        """Returns the factor by which the store grows after a missed distillation: the one asked for, or for auto
        the one the envs need."""
        if self.distill_growth is not None:
            return self.distill_growth
        return LONG_TEXT_GROWTH if self.long_student() else 2.0

    def rl_config(self) -> RlConfig:
        """Returns the RL rounds' settings."""
        return RlConfig(update=self.rl_update, critic=self.rl_critic, rollout_decisions=self.rl_rollout_decisions,
                        rollout_minutes=self.rl_rollout_minutes, gae_lambda=self.rl_gae_lambda,
                        value_lr=self.rl_value_lr, beta=self.rl_beta, floor=self.rl_floor,
                        fit_steps=self.rl_fit_steps, fit_lr=self.rl_fit_lr, kickstart=self.rl_kickstart,
                        ppo_lr=self.rl_ppo_lr,
                        ppo_epochs=self.rl_ppo_epochs, ppo_clip=self.rl_ppo_clip, ppo_entropy=self.rl_ppo_entropy,
                        ppo_kl=self.rl_ppo_kl, ppo_kl_decay=self.rl_ppo_kl_decay,
                        ppo_target_kl=self.rl_ppo_target_kl, seed=self.seed, precision=self.precision)


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the agent dies, even by SIGKILL (no orphaned trainer)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _release_freed_memory() -> None:
    """Hands the heap an RL round freed (three copies of the model, Adam's state, the round's rows) back to the OS:
    glibc keeps freed blocks mapped, so the agent's resident memory would ratchet up with the rounds' peaks."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): their allocators return memory themselves
        pass


@dataclass
class Orchestrator:
    """Owns the runner, the policy slot, the distillation child and the RL rounds."""

    config: AgentConfig
    store: ExperienceStore = field(init=False)
    stop_requested: bool = field(init=False, default=False)
    in_round: bool = field(init=False, default=False)

    def __post_init__(self):
        c = self.config
        self.store = ExperienceStore(c.db)
        self.env_names = env_names(c.envs)
        for name in self.env_names:
            if make_env(name).long_text and c.distill_preset == "agent-29m":  # validates the names before anything
                raise ValueError(f"{name}'s inputs and commands are longer than the agent-29m student reads; use "
                                 "--distill-preset agent-29m-long (or auto)")
        self.teacher = make_teacher(c.teacher, seed=c.seed, temperature=c.temperature, device=c.device)
        canary_env = make_env(self.env_names[0])
        canary_env.reset(seed=0)
        self.slot = PolicySlot(self.store, self.teacher, canary_env.observe(), device=c.device, precision=c.precision)
        self.slot.sync()
        slots = [self.env_names[i % len(self.env_names)] for i in range(c.num_envs)]
        self.decisions = self.store.count_decisions()
        # Episode seeds follow from --seed and the decisions already stored: two runs from empty stores with one seed
        # play the same episodes while the same policy acts (paired comparisons), and a resumed run draws new ones.
        self.runner = VectorRunner(slots, self.store, self.slot.policy, seed=(c.seed, self.decisions))
        self.child: subprocess.Popen | None = None
        self.child_log: Path | None = None
        self.improve = ImproveConfig(rl=c.rl_config(), eval_episodes=c.eval_episodes, out=c.out)
        self.env_model = EnvModel(modelled_envs(self.env_names, c.rl_critic))
        """What RL's model critic has learnt of its envs (refreshed from the store every round)."""
        self.played: ReturnsCache = {}
        """Each judged version's evaluation returns: the champion is played once, not every round."""
        self.rl_log = MetricsLog(Path(c.out).parent / "logs" / "rl-rounds.jsonl",
                                 Path(c.tensorboard) / "rl" if c.tensorboard else None)
        self.recent: dict[tuple[str, str], deque] = {}
        self.started = time.time()
        self.run_episodes = self.run_decisions = self.run_rl_updates = 0
        self.last_round_s: float | None = None
        """Seconds the last RL round of this run took: with a duration, no round starts that would end after it."""
        self.said_no_round = False
        self.store.set_state("teacher", c.teacher)
        self.store.set_state("envs", self.env_names)
        self._mark_interrupted_runs()
        if self.slot.version is not None:
            self.set_phase("improve", f"{self.slot.policy.name} is active")
        elif self.phase in ("switch", "improve", None):
            self.set_phase("collect", f"{self.teacher.name} collects")

    # --- persistent state ---------------------------------------------------------------------------------------

    @property
    def phase(self) -> str | None:
        return self.store.get_state("phase")

    def set_phase(self, phase: str, why: str) -> None:
        """Persists a phase change and logs it as an event."""
        if phase != self.phase:
            self.store.set_state("phase", phase)
            self.store.log_event("phase", f"{phase}: {why}", phase=phase)

    def _mark_interrupted_runs(self) -> None:
        """Marks runs whose process died as interrupted (a distillation run resumes from its checkpoint)."""
        for run in self.store.training_runs():
            if process_gone(run) or (run.status == "running" and "pid" not in run.config):
                self.store.finish_training_run(run.id, "interrupted", error="interrupted: its process is gone")

    # --- distillation child -------------------------------------------------------------------------------------

    def _maybe_start_distillation(self) -> None:
        if self.child is not None or self.slot.version is not None:
            return
        next_at = self.store.get_state("next_distill_at", self.config.trigger)
        if self.decisions < next_at or time.time() < self.store.get_state("retry_at", 0.0):
            return
        log_dir = Path(self.config.out).parent / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.child_log = log_dir / f"distill-{time.strftime('%Y%m%d-%H%M%S')}.log"
        cmd = [sys.executable, str(ROOT / "train_hrm.py"), "--db", self.config.db, "--resume", "--threshold",
               str(self.config.threshold), "--out", self.config.out, "--seed", str(self.config.seed),
               *self.config.distill_flags()]
        if self.config.device:
            cmd += ["--device", self.config.device]
        warm = self._warm_start_flags()
        cmd += warm
        with self.child_log.open("w") as log:
            self.child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        start = f"from {warm[1]}" if warm else "fresh"
        self.store.log_event("train", f"distillation started on {self.decisions} decisions, {start} (pid "
                             f"{self.child.pid}, log {self.child_log})", pid=self.child.pid)
        self.set_phase("distil", f"{self.decisions} decisions ≥ {next_at}")

    def _poll_distillation(self) -> None:
        if self.child is None or self.child.poll() is None:
            return
        code, self.child = self.child.returncode, None
        if code == 0:
            self.store.set_state("distill_failures", 0)
            if self.store.active_version() is None:
                self._remember_warm_start()
                next_at = max(round(self.config.growth() * self.decisions), self.decisions + self.config.trigger)
                self.store.set_state("next_distill_at", next_at)
                self.set_phase("collect", f"distilled model below {self.config.threshold:.0%} agreement; the "
                               f"teacher keeps acting until {next_at} decisions")
            return
        failures = self.store.get_state("distill_failures", 0) + 1
        delay = self.config.retry_backoff * 2 ** (failures - 1)
        tail = self.child_log.read_text()[-500:].strip().splitlines()[-1:] if self.child_log else []
        self.store.set_state("distill_failures", failures)
        self.store.set_state("retry_at", time.time() + delay)
        self.store.log_event("train_failed", f"distillation exited with code {code}; retry in {delay:.0f}s "
                             f"({tail[0] if tail else 'no output'})", code=code, log=str(self.child_log))
        self.set_phase("collect", "distillation failed")

    def _student_key(self) -> dict:
        """The architecture the next distillation builds (the model config of its preset, width and ACT bound): a
        missed student's weights carry over only to the same one."""
        c = self.config
        args = DistillArgs(preset=c.student_preset(), hidden_size=c.distill_hidden_size,
                           halt_max_steps=c.distill_halt_max_steps)
        return model_config(args).to_dict()

    def _remember_warm_start(self) -> None:
        """After a distillation that missed the threshold: the next one starts from its student's weights."""
        missed = next((v for v in self.store.model_versions(limit=20) if v.kind == "imitation"), None)
        if missed is not None:
            self.store.set_state("warm_start", {"checkpoint": missed.checkpoint_path, "student": self._student_key()})

    def _warm_start_flags(self) -> list[str]:
        """Returns --init-from the last missed student when its architecture is this config's and it still exists
        (a changed --distill-preset or width starts fresh)."""
        warm = self.store.get_state("warm_start")
        if warm is None or warm["student"] != self._student_key() or not Path(warm["checkpoint"]).is_file():
            return []
        return ["--init-from", warm["checkpoint"]]

    def _stop_child(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.child.kill()

    # --- switching and improving ---------------------------------------------------------------------------------

    def _sync_policy(self) -> None:
        if self.slot.sync():
            self.runner.policy = self.slot.policy
            if self.slot.version is not None:
                self.set_phase("switch", f"{self.slot.policy.name} loaded and answered the canary")
                progress = read_rl(self.store)
                progress.since_episode = self._last_episode_id()
                write_rl(self.store, progress)
                self.set_phase("improve", f"{self.slot.policy.name} acts; RL every {self.config.rl_every} episodes")
            else:
                self.set_phase("collect", "no active model")

    def _last_episode_id(self) -> int:
        latest = self.store.episodes(finished=None, limit=1)
        return latest[0].id if latest else 0

    def _maybe_improve(self) -> None:
        if not isinstance(self.runner.policy, HrmPolicy):
            return
        progress = read_rl(self.store)
        active = self.store.active_version()
        done = [e for e in self.store.episodes(finished=True, limit=self.config.rl_every * 4)
                if e.model_version == active.id and e.id > progress.since_episode]
        if len(done) < self.config.rl_every or self._round_would_overrun():
            return
        started = time.time()
        self.in_round = True  # a stop request now abandons the round (minutes of work) instead of waiting for it
        try:
            report = improve_round(self.store, active, self.env_names, self.improve, progress.rounds,
                                   self.config.device, self.env_model,
                                   learner_version(self.store, progress.learner, active), self.played, self.teacher,
                                   stop=lambda: self.stop_requested)
        except RoundStopped:
            self.store.log_event("rl", f"RL round {progress.rounds + 1} abandoned: the agent was asked to stop")
            self.env_model = EnvModel(self.env_model.envs)  # it may have been stopped halfway through a refresh
            return
        finally:
            self.in_round = False
            _release_freed_memory()
        self.last_round_s = time.time() - started
        self.run_rl_updates += 1
        progress.rounds += 1
        progress.accepted += int(report["accepted"])
        if progress.settle_learner(report["version"], report["accepted"], self.config.rl_learner_patience):
            optimizer_path(self.store.model_version(report["version"]).checkpoint_path).unlink(missing_ok=True)
            self.store.log_event("learner", f"{self.config.rl_learner_patience} candidates rejected in a row: RL "
                                 f"restarts from the active version {active.id}", version=active.id)
        progress.episodes += report["episodes"]
        progress.decisions += report["decisions"]
        progress.since_episode = self._last_episode_id()
        progress.last = {"version": report["version"], "accepted": report["accepted"],
                         **{f"{env} return": report[env]["challenger"] for env in self.env_names},
                         **{k: report[k] for k in ("approx_kl", "entropy", "value_loss") if k in report}}
        write_rl(self.store, progress)
        self.rl_log.write({"step": progress.rounds, **{k: v for k, v in report.items() if isinstance(v, int | float)},
                           **{f"{env}/{k}": v for env in self.env_names for k, v in report[env].items()}})
        self._sync_policy()

    # --- the loop -------------------------------------------------------------------------------------------------

    def _round_would_overrun(self) -> bool:
        """True when the run has a duration and the last RL round took longer than the time left: the agent acts on
        to the end instead of starting a round that would end after it (a BabyAI round takes ~10 minutes)."""
        c = self.config
        overrun = (c.duration is not None and self.last_round_s is not None
                   and time.time() - self.started + self.last_round_s > c.duration)
        if overrun and not self.said_no_round:
            self.said_no_round = True
            self.store.log_event("rl", f"no more RL rounds: the last took {self.last_round_s:.0f} s, "
                                 f"{c.duration - (time.time() - self.started):.0f} s of the run are left")
        return overrun

    def _bounded(self) -> bool:
        c = self.config
        return ((c.max_episodes is not None and self.run_episodes >= c.max_episodes)
                or (c.max_decisions is not None and self.run_decisions >= c.max_decisions)
                or (c.duration is not None and time.time() - self.started >= c.duration)
                or (c.max_rl_updates is not None and self.run_rl_updates >= c.max_rl_updates))

    def _paused_for_distillation(self) -> bool:
        return not self.config.collect_while_distilling and self.child is not None  # alive at the last poll

    def step(self) -> list[FinishedEpisode]:
        """One runner step plus the phase bookkeeping around it; returns the episodes that ended. While a paused
        runner waits for distillation, a step waits up to a second for the child instead. A finished child is
        noticed, and its model swapped in, before the runner acts again."""
        finished = []
        self._poll_distillation()
        self._sync_policy()
        if self._paused_for_distillation():
            try:
                self.child.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        else:
            finished = self.runner.step()
            n = len(self.runner.slots)
            self.decisions += n
            self.run_decisions += n
            self.run_episodes += len(finished)
        for episode in finished:
            self.recent.setdefault((episode.env, episode.policy), deque(maxlen=100)).append(episode.episode_return)
        self._maybe_start_distillation()
        self._sync_policy()
        self._maybe_improve()
        return finished

    def run(self, on_step=None) -> None:
        """Steps until a bound or a stop request; `on_step(self)` is called after every step (the display)."""
        try:
            while not self.stop_requested and not self._bounded():
                self.step()
                if on_step is not None:
                    on_step(self)
        finally:
            self._stop_child()

    def install_signal_handlers(self) -> None:
        """First SIGINT/SIGTERM: finish the current step, write it, and stop; during an RL round, abandon the round.
        A second one: exit at once."""

        def handle(signum, _frame):
            if self.stop_requested:
                os._exit(128 + signum)  # every write is one transaction: nothing is left half-written
            self.stop_requested = True
            if self.in_round:
                raise RoundStopped(f"signal {signum}")

        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)
