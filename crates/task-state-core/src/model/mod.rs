//! The task record and its parts, encoded exactly as the Python package encodes them.

mod jobs;
mod record;
mod result;
mod status;
#[cfg(test)]
mod tests;

pub use jobs::JobsField;
pub use record::{json_string, RecordHead, TaskRecord};
pub use result::TaskResult;
pub use status::{PriorityLevel, TaskStatus};
