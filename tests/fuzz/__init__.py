"""Coverage-guided fuzzing (atheris) of decode-and-validate."""
