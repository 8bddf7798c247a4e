# Shortcuts for the two set-up commands of README.md (which also work without make).
.PHONY: run test lint
run:
	python3 -m callcenter.bootstrap run

test:
	python3 -m callcenter.bootstrap test

lint:
	.venv/bin/ruff check callcenter tests
	.venv/bin/mypy
