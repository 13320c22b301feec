//! The name of a record's job list: `jobs` or `active_jobs`, as read or as configured.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The name under which a record keeps its job ids: `jobs`, or `active_jobs` in newer DMS
/// versions, or both in a record some tool wrote for readers of either version. A record is
/// written back under the names it was read with; where it has both, `active_jobs` is the
/// list (the newer frontend reads only that one) and both are written with it.
///
/// A record made by [`TaskRecord::new`](crate::TaskRecord::new) has no name yet: a repository gives it the one it is
/// configured with ([`JobsField`]) when it stores the record.
#[derive(Debug, Clone, Copy, Default, Eq)]
pub(super) enum JobsKey {
    #[default]
    New,
    Jobs,
    ActiveJobs,
    Both,
}

/// A new record and one read with `jobs` are written alike, so they compare equal.
impl PartialEq for JobsKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
            && matches!(self, JobsKey::Both) == matches!(other, JobsKey::Both)
    }
}

impl JobsKey {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            JobsKey::New | JobsKey::Jobs => "jobs",
            JobsKey::ActiveJobs | JobsKey::Both => "active_jobs",
        }
    }
}

/// The name of the job list in records a repository creates: `jobs` (the seed document's,
/// the default) or `active_jobs` (newer DMS frontends, which ignore `jobs`). Set with
/// `DMS_TASK_JOBS_FIELD`. A record that already has one of the members keeps it.
///
/// ```
/// use task_state_core::JobsField;
/// assert_eq!("active_jobs".parse::<JobsField>().unwrap(), JobsField::ActiveJobs);
/// assert_eq!(JobsField::default().as_str(), "jobs");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum JobsField {
    /// `jobs`.
    #[default]
    Jobs,
    /// `active_jobs`.
    ActiveJobs,
}

impl JobsField {
    /// The variable that sets it.
    pub const VAR: &'static str = "DMS_TASK_JOBS_FIELD";

    /// The member name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobsField::Jobs => "jobs",
            JobsField::ActiveJobs => "active_jobs",
        }
    }
}

impl fmt::Display for JobsField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobsField {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "jobs" => Ok(JobsField::Jobs),
            "active_jobs" => Ok(JobsField::ActiveJobs),
            other => Err(Error::InvalidInput {
                field: "jobs field",
                value: other.chars().take(64).collect(),
                reason: "expected jobs or active_jobs".to_owned(),
            }),
        }
    }
}
