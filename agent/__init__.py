"""Acting: text environments, policies (GPT-2 teacher, HRM student), the vectorised episode runner, RL."""
