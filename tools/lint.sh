#!/usr/bin/env bash
# The one formatter and linter per language, as the tests run them: Biome for TypeScript and JSON
# (biome.jsonc), clang-format in kernel style for C and C++ (.clang-format).
#   tools/lint.sh          check; exits 1 and prints the differences when something is off
#   tools/lint.sh --fix    rewrite the files in place (Biome's safe fixes only)
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
mapfile -t c_files < <(git ls-files '*.c' '*.h' '*.cc')
if [ "${1:-}" = --fix ]; then
  biome check --write .
  clang-format -i "${c_files[@]}"
  exit 0
fi
status=0
biome ci --colors=off . || status=1
clang-format --dry-run --Werror "${c_files[@]}" || status=1
[ "$status" -eq 0 ] && echo "lint: clean (Biome on TypeScript and JSON, clang-format on ${#c_files[@]} C and C++ files)"
exit "$status"
