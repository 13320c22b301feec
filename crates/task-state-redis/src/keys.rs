//! Key names of the layout.

pub(crate) const TASK_INDEX: &str = "index:tasks";
pub(crate) const SEQUENCE: &str = "task:id:sequence";

pub(crate) fn record(task_id: &str) -> String {
    format!("task:{task_id}")
}

pub(crate) fn metadata(task_id: &str) -> String {
    format!("task:{task_id}:metadata")
}

pub(crate) fn service_index(service: &str) -> String {
    format!("index:service:{service}")
}

pub(crate) fn service_users(service: &str) -> String {
    format!("index:service:{service}:users")
}

pub(crate) fn service_user_index(service: &str, user_id: &str) -> String {
    format!("index:service:{service}:user:{user_id}")
}

pub(crate) fn user_index(user_id: &str) -> String {
    format!("index:user:{user_id}")
}

pub(crate) fn scope_index(scope: &task_state_core::Scope) -> String {
    use task_state_core::Scope;
    match scope {
        Scope::All => TASK_INDEX.to_owned(),
        Scope::Service(service) => service_index(service),
        Scope::ServiceUser { service, user_id } => service_user_index(service, user_id),
        Scope::User(user_id) => user_index(user_id),
    }
}
