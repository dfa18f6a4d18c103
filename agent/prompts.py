"""The GPT-2 teacher's prompt (the HRM student reads a compact input instead: agent/student.py)."""

from agent.policy import Observation


def teacher_prompt(observation: Observation) -> str:
    """Returns GPT-2's prompt: the task, the observation and the legal actions, ending in "Action:"."""
    return (f"{observation.task}\n\n{observation.text}\n\n"
            f"Legal actions: {', '.join(observation.legal_actions)}.\nAction:")
