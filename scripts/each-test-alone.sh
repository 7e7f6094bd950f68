#!/usr/bin/env bash
# Runs every test of each CRATE alone, one process per test, so a test that passes
# only because another one ran first (a process-wide default, a warmed cache, a file
# left behind) fails here.
#
#   scripts/each-test-alone.sh CRATE...
#
# For each crate: builds every test target once (`cargo test --no-run`), lists each
# target's tests (`--list --format terse`: library, binaries, integration tests), and
# runs each test alone with `--exact`, the way `cargo test` runs it (the test binary,
# from the package's directory, with cargo's variables). Doctests run through
# `cargo test --doc` (rustdoc runs each in a process of its own). Prints `N passed, M failed` (and the
# failures) at the end; exits 1 when a test failed or did not run, 2 on a usage or
# build error. The environment is passed through (TOLLGATE_TEST_POSTGRES_URL for the
# cluster tests, CARGO_TARGET_DIR, …).

set -uo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 CRATE..." >&2
    exit 2
fi

cd "$(dirname "$0")/.." || exit 2
export CARGO="${CARGO:-$(command -v cargo)}"

passed=0
failed=0
ignored=0
failures=()
log=$(mktemp)
artifacts=$(mktemp)
trap 'rm -f "$log" "$artifacts"' EXIT

# Records the outcome of one test run whose output is in $log.
# $1: exit status, $2: label.
outcome() {
    if [ "$1" -eq 0 ] && grep -qE 'test result: ok\. 1 passed' "$log"; then
        passed=$((passed + 1))
        echo "ok      $2" >&2
    elif [ "$1" -eq 0 ] && grep -qE 'test result: ok\. 0 passed; 0 failed; 1 ignored' "$log"; then
        ignored=$((ignored + 1))
        echo "ignored $2" >&2
    else
        cat "$log" >&2
        failed=$((failed + 1))
        if [ "$1" -eq 0 ]; then
            failures+=("$2 (did not run)")
            echo "FAILED  $2 (did not run)" >&2
        else
            failures+=("$2")
            echo "FAILED  $2" >&2
        fi
    fi
}

for crate in "$@"; do
    manifest=$(cargo metadata --no-deps --format-version 1 |
        jq -r --arg crate "$crate" '.packages[] | select(.name == $crate) | .manifest_path')
    if [ -z "$manifest" ]; then
        echo "error: no crate named $crate in this workspace" >&2
        exit 2
    fi
    dir=$(dirname "$manifest")
    echo "== $crate: building the tests" >&2
    if ! cargo test -p "$crate" --no-run --message-format=json >"$artifacts" 2>"$log"; then
        cat "$log" >&2
        echo "error: building the tests of $crate failed" >&2
        exit 2
    fi
    # "kind name executable" of each test binary of the crate.
    mapfile -t binaries < <(jq -r --arg manifest "$manifest" '
        select(.reason == "compiler-artifact" and .executable != null and .profile.test)
        | select(.manifest_path == $manifest)
        | "\(.target.kind[0]) \(.target.name) \(.executable)"' "$artifacts")
    if [ ${#binaries[@]} -eq 0 ]; then
        echo "error: no test binaries for $crate" >&2
        exit 2
    fi
    for b in "${binaries[@]}"; do
        read -r kind name exe <<<"$b"
        label="$crate $kind $name"
        if ! (cd "$dir" && CARGO_MANIFEST_DIR="$dir" CARGO_PKG_NAME="$crate" \
            "$exe" --list --format terse) >"$log" 2>&1; then
            cat "$log" >&2
            failures+=("$label (listing failed)")
            failed=$((failed + 1))
            continue
        fi
        mapfile -t tests < <(sed -n 's/: test$//p' "$log")
        echo "== $label: ${#tests[@]} tests" >&2
        for t in "${tests[@]}"; do
            (cd "$dir" && CARGO_MANIFEST_DIR="$dir" CARGO_PKG_NAME="$crate" \
                "$exe" --exact "$t") >"$log" 2>&1
            outcome $? "$label $t"
        done
    done
    # Doctests, if the crate has a library that has them. cargo hands the filter to
    # rustdoc split at whitespace, so a doctest cannot be selected by its name (`path -
    # item (line N)`); they run in one `cargo test --doc`, where rustdoc runs each
    # doctest as a process of its own. Each is counted.
    if jq -e --arg crate "$crate" '.packages[] | select(.name == $crate) | .targets[]
            | select(.kind | index("lib")) | .doctest' \
        <(cargo metadata --no-deps --format-version 1) >/dev/null; then
        cargo test -p "$crate" --doc -- --format pretty >"$log" 2>&1
        status=$?
        mapfile -t oks < <(sed -n 's/^test \(.*\) \.\.\. ok$/\1/p' "$log")
        mapfile -t bad < <(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log")
        echo "== $crate doctests: ${#oks[@]} ok, ${#bad[@]} failed" >&2
        for t in "${oks[@]}"; do
            passed=$((passed + 1))
            echo "ok      $crate doctest $t" >&2
        done
        for t in "${bad[@]}"; do
            failed=$((failed + 1))
            failures+=("$crate doctest $t")
        done
        if [ "$status" -ne 0 ] && [ ${#bad[@]} -eq 0 ]; then
            cat "$log" >&2
            failed=$((failed + 1))
            failures+=("$crate doctests (cargo test --doc failed)")
        fi
    fi
done

if [ ${#failures[@]} -gt 0 ]; then
    echo "failures:"
    printf '  %s\n' "${failures[@]}"
fi
if [ "$ignored" -gt 0 ]; then
    echo "($ignored ignored tests not run)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
