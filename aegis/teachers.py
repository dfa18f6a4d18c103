"""Teacher specs as a user types them (`--teacher gpt2|distilgpt2|gpt2-medium|PATH|tiny|oracle|oracle:EPS`)."""

from agent.gpt2_teacher import Gpt2Teacher
from agent.oracle import OracleTeacher
from agent.policy import Policy


def make_teacher(spec: str, seed: int = 0, temperature: float = 1.0, device: str | None = None) -> Policy:
    """Returns the teacher policy for `spec`; raises TeacherWeightsError (agent.gpt2_teacher) or ValueError."""
    if spec == "oracle" or spec.startswith("oracle:"):
        epsilon = 0.0
        if spec != "oracle":
            try:
                epsilon = float(spec.split(":", 1)[1])
            except ValueError:
                raise ValueError(f"teacher {spec!r}: write oracle:EPS with EPS in [0, 1], e.g. oracle:0.5") from None
            if not 0.0 <= epsilon <= 1.0:
                raise ValueError(f"teacher {spec!r}: EPS must lie in [0, 1]")
        return OracleTeacher(epsilon=epsilon, seed=seed)
    return Gpt2Teacher.load(spec, temperature=temperature, seed=seed, device=device)
