//! Key names of the layout: [`task_state_core::layout`], under the short names this crate uses.

pub(crate) use task_state_core::layout::{
    metadata_key as metadata, record_key as record, scan_pattern, scope_index, service_index,
    service_user_index, service_user_indexes_pattern, service_users, user_index, KeyFamily,
    LayoutKey, SEQUENCE, TASK_INDEX,
};
