//! The Lua scripts, each the parts of `lua/lib/` followed by one operation, run with EVALSHA.

use std::sync::LazyLock;

/// One Lua script and its SHA1.
#[derive(Debug)]
pub(crate) struct Script {
    pub(crate) name: &'static str,
    pub(crate) body: &'static str,
    pub(crate) sha: String,
}

impl Script {
    fn new(name: &'static str, body: &'static str) -> Self {
        Script {
            name,
            body,
            sha: fred::util::sha1_hash(body),
        }
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
        )
    };
}

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
    .find(|script| script.name == name)
    .map(|script| (script.body, script.sha.as_str()))
}
