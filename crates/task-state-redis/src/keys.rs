//! Key names of the layout: [`task_state_core::layout`], under the short names this crate uses.

pub(crate) use task_state_core::layout::{
    metadata_key as metadata, record_key as record, scope_index, service_index, service_user_index,
    service_users, user_index, LayoutKey, SEQUENCE, TASK_INDEX,
};
