#!/usr/bin/env bash
# The main job on the built-in default: a SQLite ledger under $DEMO_OUT fed
# with the bundled real annotation data, verified, and summarised.
set -euo pipefail
out="${DEMO_OUT:-demo-out}"
mkdir -p "$out"
export GOVLEDGER_DB="sqlite:///$out/ledger.db"
export GOVLEDGER_KEY_DIR="$out/keys"
if [ -z "${GOVLEDGER_KEY_PASSPHRASE:-}" ]; then
  # A fixed passphrase keeps the demo self-contained; set your own for real use.
  export GOVLEDGER_KEY_PASSPHRASE="govledger-demo-only"
  echo "note: GOVLEDGER_KEY_PASSPHRASE is not set; the demo key uses a demo passphrase"
fi

if [ ! -f "$out/ledger.db" ]; then
  govledger init --origin demo.govledger.local/ledger
fi
govledger import data/prodigy_pydata-ams-2023.jsonl --format prodigy \
  --dataset pydata-ams-2023
govledger checkpoint --publish "$out/witness" > /dev/null
govledger verify --trusted-checkpoint "$out/witness/checkpoint"
echo
govledger stats
echo
echo "ledger:      $out/ledger.db"
echo "checkpoints: $out/witness/"
