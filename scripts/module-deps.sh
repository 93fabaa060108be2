#!/usr/bin/env bash
# Prints, for each module of the crate, the other modules its code names (`crate::<module>`):
# the dependency graph ARCHITECTURE.md's table allows and the `architecture_is_what_the_code_uses`
# test checks.
set -euo pipefail
cd "$(dirname "$0")/../src"
for entry in *; do
  module=${entry%.rs}
  [[ $module == lib || $module == main ]] && continue
  if [[ -d $entry ]]; then files=$(find "$entry" -name '*.rs'); else files=$entry; fi
  # shellcheck disable=SC2086
  uses=$(grep -ohE 'crate::[a-z_]+' $files | sed 's/crate:://' | sort -u | grep -vx "$module" | tr '\n' ' ' || true)
  printf '%-10s → %s\n' "$module" "${uses:-—}"
done
