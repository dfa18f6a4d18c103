"""Export the store's episodes as a Minari dataset, the offline-RL ecosystem's format (`minari.load_dataset` reads it).

    python -m aegis.export_minari --env Taxi-v4 [--policy oracle:0.5] [--version 3] [--dataset-id aegis/taxi-v0]

One dataset per env (a dataset has one observation and action space): observations are the texts the agent read
(a gymnasium `Text` space), actions the indices of the env's actions (`Discrete`), with rewards, terminations,
truncations and each episode's reset seed. The store keeps what the agent saw before each decision, not the
observation after the last one, so each episode is replayed from its seed with its actions: the replay must show
every stored observation again (the export refuses an episode that does not), and gives the final observation.
Datasets go to Minari's folder (`MINARI_DATASETS_PATH`, default ~/.minari/datasets) or `--datasets-path`.
"""

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.envs import make_env
from data.store import DEFAULT_DB, EpisodeRow, ExperienceStore, StoreError
from hrm.cli import parse_args


class MinariExportError(RuntimeError):
    """The episodes cannot be exported; the message says why and what to do."""


@dataclass
class MinariArgs:
    """Export the store's finished episodes of one env as a Minari dataset."""

    env: str = "Taxi-v4"
    """The env whose episodes are exported."""
    db: str = DEFAULT_DB
    """Experience store: a SQLite file path or any SQLAlchemy URL."""
    policy: str | None = None
    """Only episodes of this acting policy (e.g. oracle:0.5, hrm:v3; default: every policy)."""
    version: int | None = None
    """Only episodes of this model version."""
    dataset_id: str | None = None
    """Minari dataset id, `namespace/name-vN` (default: aegis/<env>-<policy or all>-v0, e.g.
    aegis/taxi-v4-oracle-0-5-v0)."""
    datasets_path: str | None = None
    """Folder of Minari datasets (default: MINARI_DATASETS_PATH, else ~/.minari/datasets)."""


def episode_buffer(store: ExperienceStore, episode: EpisodeRow, index: int):
    """Returns the Minari EpisodeBuffer (the dataset's episode `index`) of a finished episode, replayed from its seed
    to recover its last observation."""
    from minari.data_collector import EpisodeBuffer

    decisions = sorted(store.decisions(episode_ids=[episode.id]), key=lambda d: d.step)
    env = make_env(episode.env)
    env.reset(seed=episode.seed)
    observations = []
    for d in decisions:
        if env.observation_text() != d.observation:
            raise MinariExportError(f"episode {episode.id} does not replay from its seed {episode.seed} (step {d.step} "
                                    "shows another observation): export episodes the agent recorded with seeds, "
                                    "by this version (BabyAI's text now remembers the mission's objects; TextWorld's "
                                    "training seeds now play other games, described from their facts)")
        observations.append(d.observation)
        env.step(d.chosen)
    observations.append(env.observation_text())
    return EpisodeBuffer(id=index, seed=episode.seed, observations=observations,
                         actions=[d.chosen for d in decisions], rewards=[d.reward for d in decisions],
                         terminations=[d.terminated for d in decisions], truncations=[d.truncated for d in decisions])


def export_minari(store: ExperienceStore, args: MinariArgs):
    """Writes the selected episodes as a Minari dataset; returns the MinariDataset."""
    import gymnasium
    import minari

    if args.datasets_path is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(Path(args.datasets_path).resolve())
    episodes = [e for e in sorted(store.episodes(env=args.env, policy=args.policy), key=lambda e: e.id)
                if args.version is None or e.model_version == args.version]
    if not episodes:
        raise MinariExportError(f"the store holds no finished {args.env} episodes"
                                + (f" of policy {args.policy}" if args.policy else "")
                                + (f" of version {args.version}" if args.version is not None else ""))
    buffers = [episode_buffer(store, e, i) for i, e in enumerate(episodes)]  # in the store's order
    texts = [o for b in buffers for o in b.observations]
    observation_space = gymnasium.spaces.Text(max_length=max(map(len, texts)), min_length=0,
                                              charset="".join(sorted(set("".join(texts)))))
    action_space = gymnasium.spaces.Discrete(len(make_env(args.env).action_names))
    name = re.sub(r"[^a-z0-9_]+", "-", f"{args.env}-{args.policy or 'all'}".lower())  # Minari's id alphabet
    dataset_id = args.dataset_id or f"aegis/{name}-v0"
    try:
        return minari.create_dataset_from_buffers(
            dataset_id, buffers, observation_space=observation_space, action_space=action_space,
            algorithm_name=args.policy or "aegis (every policy)", author="Aegis", code_permalink=None,
            description=f"{len(buffers)} {args.env} episodes from an Aegis experience store, observations as text")
    except ValueError as e:  # an existing dataset id, a malformed one
        raise MinariExportError(f"minari refused dataset {dataset_id!r}: {e}") from e


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m aegis.export_minari`; returns the exit code (2 after a one-line error)."""
    args = parse_args(MinariArgs, argv, prog="python -m aegis.export_minari")
    if "://" not in args.db and not Path(args.db).is_file():
        print(f"aegis.export_minari: there is no experience store at {args.db}; point --db at one", file=sys.stderr)
        return 2
    try:
        make_env(args.env)
        dataset = export_minari(ExperienceStore(args.db), args)
    except (ValueError, StoreError, MinariExportError) as e:
        print(f"aegis.export_minari: {e}", file=sys.stderr)
        return 2
    print(f"wrote Minari dataset {dataset.spec.dataset_id}: {dataset.total_episodes} episodes, "
          f"{dataset.total_steps} steps (minari.load_dataset({dataset.spec.dataset_id!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
