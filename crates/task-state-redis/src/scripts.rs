//! The Lua scripts, each the parts of `lua/lib/` followed by one operation, run with EVALSHA
//! (Redis 6.2), and the same operations as one library of Redis Functions (7.0 and later).
//!
//! `operations!` below is the one list of operations: each row names the operation (its
//! file `lua/{name}.lua`), the parts of `lua/lib/` its script starts with, whether it only
//! frees memory, and the name of its Redis Cluster variant where it has one. The scripts,
//! the library and every list of them are built from it.

use std::sync::LazyLock;

use task_state_core::layout;

/// One Lua script: its whole text and SHA1 for EVALSHA, and its own part (`op`, what follows
/// the parts of `lua/lib/` in the text), from which the [`LIBRARY`] of Redis Functions is
/// built.
#[derive(Debug)]
pub(crate) struct Script {
    pub(crate) name: &'static str,
    pub(crate) body: String,
    pub(crate) sha: String,
    op: String,
    /// Whether it only deletes keys, removes members of sets and extends TTLs.
    frees_memory: bool,
}

/// Which parts of `lua/lib/` a script's text starts with, and for an editing script, which
/// variant of the writes it takes (its local `variant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parts {
    /// The whole library.
    Library,
    /// The whole library; the writes of `lua/lib/commit.lua` (`SINGLE_NODE`).
    Edit,
    /// The whole library and `lua/lib/cluster.lua`, whose writes (`CLUSTER`) touch the
    /// record alone (docs/cluster.md).
    ClusterEdit,
    /// Only the errors and the layout: a cluster follow-up runs once per index set of every
    /// mutation, and the whole library costs tens of microseconds to load each time.
    FollowUp,
}

/// The parts of `lua/lib/`, in the order they are joined: each may use what the ones before
/// it define.
macro_rules! lib {
    () => {
        concat!(
            include_str!("lua/lib/errors.lua"),
            "\n",
            include_str!("lua/lib/bytes.lua"),
            "\n",
            include_str!("lua/lib/scanner.lua"),
            "\n",
            include_str!("lua/lib/hint.lua"),
            "\n",
            include_str!("lua/lib/model.lua"),
            "\n",
            include_str!("lua/lib/layout.lua"),
            "\n",
            include_str!("lua/lib/edit.lua"),
            "\n",
            include_str!("lua/lib/commit.lua"),
            "\n",
        )
    };
}

const CLUSTER_LIB: &str = concat!(include_str!("lua/lib/cluster.lua"), "\n");

const FOLLOW_UP_LIB: &str = concat!(
    include_str!("lua/lib/errors.lua"),
    "\n",
    include_str!("lua/lib/layout.lua"),
    "\n",
);

impl Parts {
    /// The text before the operation's own: the parts of `lua/lib/`, and the variant an
    /// editing script takes.
    fn prefix(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Parts::Library => (lib!(), "", ""),
            Parts::Edit => (lib!(), "", "local variant = SINGLE_NODE\n"),
            Parts::ClusterEdit => (lib!(), CLUSTER_LIB, "local variant = CLUSTER\n"),
            Parts::FollowUp => (FOLLOW_UP_LIB, "", ""),
        }
    }
}

impl Script {
    fn new(name: &'static str, source: &'static str, parts: Parts, frees_memory: bool) -> Self {
        let (lib, cluster, variant) = parts.prefix();
        let op = format!("{variant}{source}");
        let body = with_layout(&format!("{lib}{cluster}{op}"));
        Script {
            name,
            sha: fred::util::sha1_hash(&body),
            body,
            op: with_layout(&op),
            frees_memory,
        }
    }

    /// The name of this script's function in the [`LIBRARY`], for FCALL.
    pub(crate) fn function(&self) -> String {
        function_name(self.name, &LIBRARY.version)
    }
}

/// The values of [`task_state_core::layout`] that `lua/lib/layout.lua` names by marker
/// (`@NAME@`), put in place when the scripts are built, so that each is written down once.
fn layout_values() -> [(&'static str, String); 11] {
    [
        ("@TASK_PREFIX@", layout::TASK_PREFIX.to_owned()),
        ("@METADATA_SUFFIX@", layout::METADATA_SUFFIX.to_owned()),
        ("@TASK_INDEX@", layout::TASK_INDEX.to_owned()),
        ("@SERVICE_PREFIX@", layout::SERVICE_PREFIX.to_owned()),
        ("@USER_PREFIX@", layout::USER_PREFIX.to_owned()),
        ("@USERS_SUFFIX@", layout::USERS_SUFFIX.to_owned()),
        ("@USER_INFIX@", layout::USER_INFIX.to_owned()),
        (
            "@METADATA_GRACE_MS@",
            (layout::METADATA_GRACE_SECONDS * 1000).to_string(),
        ),
        ("@MAX_TTL_SECONDS@", layout::MAX_TTL_SECONDS.to_string()),
        ("@INDEX_MARGIN_MS@", layout::INDEX_MARGIN_MS.to_string()),
        (
            "@REFRESH_HEADROOM_MAX_MS@",
            layout::REFRESH_HEADROOM_MAX_MS.to_string(),
        ),
    ]
}

/// `text` with the layout's markers replaced by their values ([`layout_values`]).
fn with_layout(text: &str) -> String {
    let mut text = text.to_owned();
    for (marker, value) in layout_values() {
        text = text.replace(marker, &value);
    }
    text
}

/// The table of operations: `name: Parts, frees_memory: bool[, cluster: cluster_name];`,
/// one row each. Builds [`Scripts`] (a field a script), [`SCRIPTS`], [`Scripts::all`] and
/// [`Scripts::cluster_variant`].
macro_rules! operations {
    ($($name:ident: $parts:ident, frees_memory: $frees:literal $(, cluster: $cluster:ident)?;)*) => {
        /// Every script of the backend, those of one node and those of the Redis Cluster
        /// path (docs/cluster.md), whose scripts touch the keys of one slot each.
        #[derive(Debug)]
        pub(crate) struct Scripts {
            $(
                pub(crate) $name: Script,
                $(pub(crate) $cluster: Script,)?
            )*
        }

        pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
            $(
                $name: Script::new(
                    stringify!($name),
                    include_str!(concat!("lua/", stringify!($name), ".lua")),
                    Parts::$parts,
                    $frees,
                ),
                $($cluster: Script::new(
                    stringify!($cluster),
                    include_str!(concat!("lua/", stringify!($name), ".lua")),
                    Parts::ClusterEdit,
                    $frees,
                ),)?
            )*
        });

        impl Scripts {
            /// Every script, in the table's order.
            pub(crate) fn all(&self) -> impl Iterator<Item = &Script> {
                [$(&self.$name, $(&self.$cluster,)?)*].into_iter()
            }

            /// The Redis Cluster variant of the single-node editing script `script`.
            pub(crate) fn cluster_variant(&self, script: &Script) -> Option<&Script> {
                match script.name {
                    $($(stringify!($name) => Some(&self.$cluster),)?)*
                    _ => None,
                }
            }
        }
    };
}

// `frees_memory`: the operation only deletes keys, removes members of sets and extends TTLs,
// so that its function may run while Redis is over maxmemory, as its EVALSHA does.
operations! {
    // lua/{name}.lua   parts of lua/lib/   frees memory          its Redis Cluster variant
    save:               Library,            frees_memory: false;
    set_status:         Edit,               frees_memory: false,  cluster: cluster_set_status;
    append_log:         Edit,               frees_memory: false,  cluster: cluster_append_log;
    update_result:      Edit,               frees_memory: false,  cluster: cluster_update_result;
    set_jobs:           Edit,               frees_memory: false,  cluster: cluster_set_jobs;
    remove:             Library,            frees_memory: true;
    prune:              Library,            frees_memory: true;
    reindex:            Library,            frees_memory: false;
    unindex:            Library,            frees_memory: true;
    // The Redis Cluster path's own (docs/cluster.md).
    cluster_save:       Library,            frees_memory: false;
    cluster_remove:     Library,            frees_memory: true;
    cluster_metadata:   FollowUp,           frees_memory: false;
    cluster_index:      FollowUp,           frees_memory: false;
}

fn function_name(script: &str, version: &str) -> String {
    format!("task_state_{script}_{version}")
}

/// Every script as one library of Redis Functions (Redis 7.0 and later, Valkey), loaded once
/// with `FUNCTION LOAD` and called with `FCALL`: Redis runs the library's top-level chunk
/// (the definitions of `lua/lib/`) at the load, not on every call as for EVALSHA, which
/// saves about 10 µs a mutation (docs/benchmarks.md). The scripts are the same text: each
/// becomes a local function of the library, and the library's own `KEYS` and `ARGV` (locals
/// that every function of the library sees) are set from FCALL's keys and arguments before
/// it runs. The library's name and the names of its functions carry a version (the first
/// 12 hex digits of a SHA1 of the library), so that two releases of this crate can share a
/// server, each calling its own functions.
#[derive(Debug)]
pub(crate) struct Library {
    pub(crate) name: String,
    pub(crate) version: String,
    /// The source for `FUNCTION LOAD`, with its `#!lua name=` line.
    pub(crate) body: String,
}

/// The marker that stands for the version in the library's text until the version is known.
const VERSION_MARK: &str = "@VERSION@";

/// `name`'s operation as a local function of the library's `init`, put into its table of
/// operations.
fn push_operation(out: &mut String, name: &str, body: &str) {
    out.push_str(&format!(
        "local function op_{name}()\n{body}\nend\nOPS['{name}'] = op_{name}\n"
    ));
}

pub(crate) static LIBRARY: LazyLock<Library> = LazyLock::new(|| {
    // While FUNCTION LOAD runs the library, Lua's standard libraries are out of reach (only
    // `redis` is), and `lua/lib/` reads them at its top level: the definitions run in
    // `init`, on the first call of any function after a load. The follow-ups need only a
    // part of the library, which the whole of it holds; lib/cluster.lua defines the
    // CLUSTER variant under names of its own, beside the library's SINGLE_NODE.
    let mut text = String::from(
        "local KEYS, ARGV = {}, {}\nlocal OPS = nil\nlocal function init()\nOPS = {}\n",
    );
    text.push_str(&with_layout(concat!(
        lib!(),
        include_str!("lua/lib/cluster.lua"),
        "\n"
    )));
    for script in SCRIPTS.all() {
        push_operation(&mut text, script.name, &script.op);
    }
    text.push_str("end\n");
    for script in SCRIPTS.all() {
        let (name, function) = (script.name, function_name(script.name, VERSION_MARK));
        // Redis refuses a function that may write when over maxmemory, before it runs; those
        // that only delete, remove members and extend TTLs may run then, as their EVALSHA
        // does (Redis refuses a script's writes that need memory, and deletes free it).
        let flags = if script.frees_memory {
            "{'allow-oom'}"
        } else {
            "{}"
        };
        text.push_str(&format!(
            "redis.register_function{{function_name = '{function}', flags = {flags}, callback = function(keys, args)\n  if not OPS then init() end\n  KEYS, ARGV = keys, args\n  return OPS['{name}']()\nend}}\n"
        ));
    }
    let version = fred::util::sha1_hash(&text)[..12].to_owned();
    let name = format!("task_state_{version}");
    let body = format!(
        "#!lua name={name}\n{}",
        text.replace(VERSION_MARK, &version)
    );
    Library {
        name,
        version,
        body,
    }
});

/// The shared library every script starts with, for tests that run their own Lua on top of
/// it (for instance to check that it builds the same key names as
/// [`task_state_core::layout`]).
#[doc(hidden)]
pub fn lua_library() -> &'static str {
    static LIB: LazyLock<String> = LazyLock::new(|| with_layout(lib!()));
    &LIB
}

/// The body and SHA1 of a script by name (a row of the table of operations above: `save`,
/// `set_status`, ..., and the Redis Cluster path's `cluster_set_status`, ...), for
/// benchmarks that run them with `redis-benchmark`.
pub fn script_source(name: &str) -> Option<(&'static str, &'static str)> {
    all_scripts()
        .find(|script| script.name == name)
        .map(|script| (script.body.as_str(), script.sha.as_str()))
}

/// Every script, those of one node and those of the Redis Cluster path.
pub(crate) fn all_scripts() -> impl Iterator<Item = &'static Script> {
    let scripts: &'static Scripts = &SCRIPTS;
    scripts.all()
}

/// The library of Redis Functions that holds every script (Redis 7.0 and later): its name
/// and its source for `FUNCTION LOAD`, and the name of `script`'s function in it (for
/// `FCALL`; `script` as in [`script_source`]), for benchmarks and tests.
#[doc(hidden)]
pub fn function_library(script: &str) -> Option<(&'static str, &'static str, String)> {
    script_source(script)?;
    let library = &*LIBRARY;
    Some((
        library.name.as_str(),
        library.body.as_str(),
        function_name(script, &library.version),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every marker of `lua/lib/layout.lua` was given a value: none is left in any script.
    #[test]
    fn no_marker_is_left() {
        let texts = all_scripts()
            .map(|s| s.body.as_str())
            .chain([lua_library(), LIBRARY.body.as_str()]);
        for text in texts {
            for (at, _) in text.match_indices('@') {
                let rest = &text[at + 1..];
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                assert!(
                    word.is_empty() || !rest[word.len()..].starts_with('@'),
                    "@{word}@ left in a script"
                );
            }
        }
    }

    /// The values go between single quotes in Lua: none may hold a quote or a backslash.
    #[test]
    fn layout_values_need_no_escaping() {
        for (marker, value) in layout_values() {
            assert!(!value.contains(['\'', '\\', '\n']), "{marker}");
        }
    }

    #[test]
    fn every_editing_script_has_its_cluster_variant() {
        let s = &*SCRIPTS;
        for script in [&s.set_status, &s.append_log, &s.update_result, &s.set_jobs] {
            let cluster = s.cluster_variant(script).expect("a cluster variant");
            assert_eq!(cluster.name, format!("cluster_{}", script.name));
            assert!(cluster.body.contains("local variant = CLUSTER\n"));
            assert!(script.body.contains("local variant = SINGLE_NODE\n"));
        }
        assert!(s.cluster_variant(&s.save).is_none());
    }
}
