#!/usr/bin/env bash
# The main job on the built-in default: a SQLite ledger under $DEMO_OUT fed
# with the bundled real data (Prodigy annotations, Label Studio exports and
# a model-decision log), verified against a published checkpoint, evaluated
# against all six frameworks, and rendered as a signed audit pack that is
# then verified offline. Running it again appends nothing new.
set -euo pipefail
out="${DEMO_OUT:-demo-out}"
mkdir -p "$out"
export GOVLEDGER_DB="sqlite:///$out/ledger.db"
export GOVLEDGER_KEY_DIR="$out/keys"
if [ -z "${GOVLEDGER_KEY_PASSPHRASE:-}" ]; then
  # A fixed passphrase keeps the demo self-contained; set your own for real use.
  export GOVLEDGER_KEY_PASSPHRASE="govledger-demo-only"
  echo "note: GOVLEDGER_KEY_PASSPHRASE is not set; the demo keys use a demo passphrase"
fi

step() { printf '\n== %s\n' "$*"; }

if [ ! -f "$out/ledger.db" ]; then
  step "create the ledger"
  govledger init --origin demo.govledger.local/ledger
fi

step "import the bundled real data"
govledger import data/prodigy_pydata-ams-2023.jsonl --format prodigy \
  --dataset pydata-ams-2023
govledger import data/labelstudio_export_reviews_predictions.json --format label-studio
govledger import data/labelstudio_export_history.json --format label-studio
govledger import data/nannyml_california_housing_reference.csv --format decisions-csv \
  --id-col id --score-col y_pred_proba --prediction-col y_pred --time-col timestamp \
  --truth-col clf_target --model california-housing-classifier@1.0 \
  --dataset california-housing --threshold 0.8

step "publish a checkpoint and verify the ledger against it"
govledger checkpoint --publish "$out/witness" > /dev/null
govledger verify --trusted-checkpoint "$out/witness/checkpoint"

step "ledger summary"
govledger stats

step "evaluate HIPAA, GDPR, NIST AI RMF, ISO 27001, EU AI Act, ISO 42001"
govledger evaluate > "$out/evaluation.txt"
govledger evaluate --json > "$out/evaluation.json"
python3 - "$out/evaluation.json" <<'PY'
import json, sys
evaluation = json.load(open(sys.argv[1], encoding="utf-8"))
for framework in evaluation["frameworks"]:
    counts = {}
    for control in framework["controls"]:
        counts[control["status"]] = counts.get(control["status"], 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"  {framework['id']:<12} {len(framework['controls']):>2} controls: {summary}")
for check in evaluation["checks"]:
    if check["id"] == "override-rate":
        figures = check["figures"]
        print(f"  override rate: {json.dumps(figures)[:200]}")
PY

step "render and sign the audit pack"
govledger report --out "$out/audit-pack.pdf" --organisation "govledger demo" \
  --framework hipaa --framework gdpr --framework nist-ai-rmf \
  --framework iso27001 --framework eu-ai-act --framework iso42001 \
  --max-embedded 100000

step "verify the pack offline"
govledger keys show > "$out/log-verifier-key.txt"
govledger verify-pack "$out/audit-pack.pdf" \
  --trust "$GOVLEDGER_KEY_DIR/signing-cert.pem" \
  --key "$(cat "$out/log-verifier-key.txt")"
if command -v pdfsig > /dev/null; then
  pdfsig "$out/audit-pack.pdf" | grep -E "Signature Validation|Total document signed" || true
fi

step "where everything is"
echo "ledger:          $out/ledger.db"
echo "log key:         $out/log-verifier-key.txt (verifier key), $GOVLEDGER_KEY_DIR/ (private keys, encrypted)"
echo "checkpoints:     $out/witness/ (latest: checkpoint, all: history/)"
echo "evaluation:      $out/evaluation.txt, $out/evaluation.json"
echo "audit pack:      $out/audit-pack.pdf"
echo "signing cert:    $GOVLEDGER_KEY_DIR/signing-cert.pem"
