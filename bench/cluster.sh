#!/usr/bin/env bash
# Cluster rows of the benchmark: three `tollgate serve` nodes on one PostgreSQL
# database, load on all three (decisions per second per node and in total), then the
# sequencing lag read from the ledger: a pending row's commit → its integration into
# the chain by the elected sequencer (median and p99 over every entry of the run).
# Usage: bench/cluster.sh [--seconds N] [--connections C]   (C connections per node)
# PostgreSQL: TOLLGATE_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
admin_url="${TOLLGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tollgate -p tollgate-bench
db="tollgate_bench_$$"
base="${admin_url%%\?*}"
db_url="${base%/*}/$db"
psql "$admin_url" -qc "CREATE DATABASE $db"
trap 'psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr); $(psql "$admin_url" -Atc 'SHOW server_version' | cut -d' ' -f1) PostgreSQL on the same machine"
"$target/release/tollgate-cluster-bench" --tollgate "$target/release/tollgate" --database-url "$db_url" "$@"
echo
echo "| sequencing lag (commit → sequenced) | median ms | p99 ms | max ms | entries |"
echo "|---|---:|---:|---:|---:|"
psql "$db_url" -At -F ' | ' -c "
  SELECT '| all entries', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag)::numeric, 1),
         round(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag)::numeric, 1),
         round(max(lag)::numeric, 1), count(*) || ' |'
  FROM (SELECT extract(epoch FROM sequenced_at - committed_at) * 1000 AS lag FROM ledger) l"
