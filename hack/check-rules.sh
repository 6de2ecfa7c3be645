#!/usr/bin/env bash
# Checks the alerting rules of config/prometheus with promtool: they parse,
# and their unit tests (config/prometheus/rules_test.yaml) pass.
set -euo pipefail
cd "$(dirname "$0")/.."
promtool=$(bash hack/promtool.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go run ./hack/promrules config/prometheus/rules.yaml > "$work/rules.yaml"
cp config/prometheus/rules_test.yaml "$work/"
"$promtool" check rules "$work/rules.yaml"
(cd "$work" && "$promtool" test rules rules_test.yaml)
