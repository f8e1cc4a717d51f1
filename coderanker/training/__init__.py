"""Training on Ray Train workers: the reranker (TRL RewardTrainer) and the policy (TRL PPO/GRPO)."""
