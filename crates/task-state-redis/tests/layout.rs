//! The Lua scripts build the same key names as `task_state_core::layout`, the one place the
//! layout is written down in Rust.

use task_state_core::layout;
use task_state_redis::testing::server_or_skip;

#[test]
fn lua_and_rust_name_the_same_keys() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let body = format!(
        "{}\nlocal i = indexes_of('7', 'render', 'bob')\n\
         return {{record_key('7'), metadata_key('7'), i.tasks.key, i.service.key, \
         i.service_users.key, i.service_user.key, i.user.key, tostring(METADATA_GRACE_MS), \
         tostring(MAX_TTL_SECONDS)}}",
        task_state_redis::lua_library()
    );
    let reply = server.cli(&["EVAL", &body, "0"]);
    let names: Vec<&str> = reply.lines().collect();
    let indexes = layout::TaskIndexes::of("render", "bob");
    let grace = (layout::METADATA_GRACE_SECONDS * 1000).to_string();
    let max_ttl = layout::MAX_TTL_SECONDS.to_string();
    assert_eq!(
        names,
        [
            layout::record_key("7").as_str(),
            layout::metadata_key("7").as_str(),
            indexes.tasks.as_str(),
            indexes.service.as_str(),
            indexes.service_users.as_str(),
            indexes.service_user.as_str(),
            indexes.user.as_str(),
            grace.as_str(),
            max_ttl.as_str(),
        ]
    );
}
