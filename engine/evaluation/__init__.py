"""Evaluation: ``wordbrush eval pack`` (the pack's quality gates) and ``wordbrush eval
edits`` (the methods' harness). Both score with the pack's judge on held-out seeds."""
