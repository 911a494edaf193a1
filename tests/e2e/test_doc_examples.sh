#!/usr/bin/env bash
# Every lua and sh example of docs/*.md and README.md is run as the doc
# shows it, or says why not (tests/support/doc_examples.py).
# usage: test_doc_examples.sh RUNBOOK_BIN SOURCE_DIR
set -u
exec python3 "$2/tests/support/doc_examples.py" "$1" "$2"
