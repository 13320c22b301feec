//! The Lua scripts, each the parts of `lua/lib/` followed by one operation, run with EVALSHA
//! (Redis 6.2), and the same operations as one library of Redis Functions (7.0 and later).

use std::sync::LazyLock;

/// One Lua script: its whole text and SHA1 for EVALSHA, and its own file (`op`, what follows
/// the library in the text), from which the [`LIBRARY`] of Redis Functions is built.
#[derive(Debug)]
pub(crate) struct Script {
    pub(crate) name: &'static str,
    pub(crate) body: &'static str,
    pub(crate) sha: String,
    op: &'static str,
    build: Build,
}

/// Which parts of `lua/lib/` a script's text starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    /// The whole library.
    Library,
    /// The whole library and `lua/lib/cluster.lua`.
    ClusterEdit,
    /// Only the errors and the layout.
    FollowUp,
}

impl Script {
    fn new(name: &'static str, body: &'static str, op: &'static str, build: Build) -> Self {
        Script {
            name,
            body,
            sha: fred::util::sha1_hash(body),
            op,
            build,
        }
    }

    /// The name of this script's function in the [`LIBRARY`], for FCALL.
    pub(crate) fn function(&self) -> String {
        function_name(self.name, &LIBRARY.version)
    }
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

macro_rules! script {
    ($name:literal) => {
        Script::new(
            $name,
            concat!(lib!(), include_str!(concat!("lua/", $name, ".lua"))),
            include_str!(concat!("lua/", $name, ".lua")),
            Build::Library,
        )
    };
}

/// The cluster build of an editing script (docs/cluster.md): the library, then
/// `lua/lib/cluster.lua`, which makes it touch the record alone, then the script.
macro_rules! cluster_edit {
    ($name:literal) => {
        Script::new(
            concat!("cluster_", $name),
            concat!(
                lib!(),
                include_str!("lua/lib/cluster.lua"),
                "\n",
                include_str!(concat!("lua/", $name, ".lua"))
            ),
            include_str!(concat!("lua/", $name, ".lua")),
            Build::ClusterEdit,
        )
    };
}

/// A cluster follow-up script (docs/cluster.md): only the parts of the library it uses
/// (typed errors and the layout's names and TTL rule), as it runs once per index set of
/// every mutation and the whole library costs tens of microseconds to load each time.
macro_rules! follow_up {
    ($name:literal) => {
        Script::new(
            $name,
            concat!(
                include_str!("lua/lib/errors.lua"),
                "\n",
                include_str!("lua/lib/layout.lua"),
                "\n",
                include_str!(concat!("lua/", $name, ".lua"))
            ),
            include_str!(concat!("lua/", $name, ".lua")),
            Build::FollowUp,
        )
    };
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

/// The operations that only delete keys, remove members of sets and extend TTLs.
const FREES_MEMORY: [&str; 4] = ["remove", "cluster_remove", "prune", "unindex"];

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
    // `init`, on the first call of any function after a load.
    let mut text = String::from(
        "local KEYS, ARGV = {}, {}\nlocal OPS = nil\nlocal function init()\nOPS = {}\n",
    );
    text.push_str(lib!());
    // The follow-ups need only a part of the library, which the whole of it holds; the
    // cluster builds of the editing scripts, lib/cluster.lua after it, in a block of their
    // own, since it replaces three of the library's functions for them.
    let (edits, others): (Vec<&Script>, Vec<&Script>) =
        all_scripts().partition(|s| s.build == Build::ClusterEdit);
    for script in &others {
        push_operation(&mut text, script.name, script.op);
    }
    text.push_str("do\n");
    text.push_str(include_str!("lua/lib/cluster.lua"));
    text.push('\n');
    for script in &edits {
        push_operation(&mut text, script.name, script.op);
    }
    text.push_str("end\nend\n");
    for name in others.iter().chain(&edits).map(|s| s.name) {
        let function = function_name(name, VERSION_MARK);
        // Redis refuses a function that may write when over maxmemory, before it runs; those
        // that only delete, remove members and extend TTLs may run then, as their EVALSHA
        // does (Redis refuses a script's writes that need memory, and deletes free it).
        let flags = if FREES_MEMORY.contains(&name) {
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
    lib!()
}

/// Every script of the backend.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) save: Script,
    pub(crate) set_status: Script,
    pub(crate) append_log: Script,
    pub(crate) update_result: Script,
    pub(crate) set_jobs: Script,
    pub(crate) remove: Script,
    pub(crate) prune: Script,
    pub(crate) reindex: Script,
    pub(crate) unindex: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    save: script!("save"),
    set_status: script!("set_status"),
    append_log: script!("append_log"),
    update_result: script!("update_result"),
    set_jobs: script!("set_jobs"),
    remove: script!("remove"),
    prune: script!("prune"),
    reindex: script!("reindex"),
    unindex: script!("unindex"),
});

/// The scripts of the Redis Cluster path (docs/cluster.md): each touches the keys of one
/// slot.
#[derive(Debug)]
pub(crate) struct ClusterScripts {
    pub(crate) set_status: Script,
    pub(crate) append_log: Script,
    pub(crate) update_result: Script,
    pub(crate) set_jobs: Script,
    pub(crate) save: Script,
    pub(crate) remove: Script,
    pub(crate) metadata: Script,
    pub(crate) index: Script,
}

impl ClusterScripts {
    /// The cluster build of the single-node editing script `script`.
    pub(crate) fn edit_of(&self, script: &Script) -> Option<&Script> {
        [
            &self.set_status,
            &self.append_log,
            &self.update_result,
            &self.set_jobs,
        ]
        .into_iter()
        .find(|s| s.name.strip_prefix("cluster_") == Some(script.name))
    }

    pub(crate) fn all(&self) -> [&Script; 8] {
        [
            &self.set_status,
            &self.append_log,
            &self.update_result,
            &self.set_jobs,
            &self.save,
            &self.remove,
            &self.metadata,
            &self.index,
        ]
    }
}

pub(crate) static CLUSTER_SCRIPTS: LazyLock<ClusterScripts> = LazyLock::new(|| ClusterScripts {
    set_status: cluster_edit!("set_status"),
    append_log: cluster_edit!("append_log"),
    update_result: cluster_edit!("update_result"),
    set_jobs: cluster_edit!("set_jobs"),
    save: script!("cluster_save"),
    remove: script!("cluster_remove"),
    metadata: follow_up!("cluster_metadata"),
    index: follow_up!("cluster_index"),
});

/// The body and SHA1 of a script by name (`save`, `set_status`, `append_log`,
/// `update_result`, `set_jobs`, `remove`, `prune`, `reindex`, `unindex`, and the Redis
/// Cluster path's `cluster_set_status`, `cluster_append_log`, `cluster_update_result`,
/// `cluster_set_jobs`, `cluster_save`, `cluster_remove`, `cluster_metadata`,
/// `cluster_index`), for benchmarks that run them with `redis-benchmark`.
pub fn script_source(name: &str) -> Option<(&'static str, &str)> {
    all_scripts()
        .find(|script| script.name == name)
        .map(|script| (script.body, script.sha.as_str()))
}

/// Every script, those of one node and those of the Redis Cluster path.
pub(crate) fn all_scripts() -> impl Iterator<Item = &'static Script> {
    let s = &*SCRIPTS;
    [
        &s.save,
        &s.set_status,
        &s.append_log,
        &s.update_result,
        &s.set_jobs,
        &s.remove,
        &s.prune,
        &s.reindex,
        &s.unindex,
    ]
    .into_iter()
    .chain(CLUSTER_SCRIPTS.all())
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
