"""Pipelines: the top floor's multi-stage jobs (record -> train SAEs -> score), built from the floors below."""
