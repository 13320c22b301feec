# Recipes for working on task-state. `just --list` shows them.

# List the recipes.
default:
    @just --list

# Every test of every crate. Tests that need Redis start their own private redis-server,
# so none has to be running (redis-server must be installed).
test:
    cargo test --workspace --all-features

# Formatting, clippy and rustdoc, each with warnings as errors.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings
    RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --all-features

# The example worker: in memory unless DMS_REDIS_WRITE_URL is set.
example:
    cargo run --example worker

# Benchmarks against a private redis-server (or --url), measured against redis-benchmark;
# pass arguments through, e.g. `just bench --quick` or `just bench --json`.
bench *ARGS:
    cargo run --release -p task-state-bench -- {{ARGS}}
