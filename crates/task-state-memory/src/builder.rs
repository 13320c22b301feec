//! Building an [`InMemoryTaskRepository`] with a chosen TTL, zone and clock.

use std::sync::Arc;
use std::time::Duration;

use task_state_core::layout::{DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS};
use task_state_core::{Clock, JobsField, SystemClock, Zone};

use crate::InMemoryTaskRepository;

/// How long a task lives after its last write when nothing else is set: 7776000 s (90
/// days), the Python package's `DMS_REDIS_TASK_TTL_SECONDS` default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(DEFAULT_TTL_SECONDS);

/// Builds an [`InMemoryTaskRepository`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use task_state_core::{ManualClock, Zone};
/// use task_state_memory::InMemoryTaskRepository;
///
/// let clock = ManualClock::new("2025-11-17T01:00:16Z".parse().unwrap());
/// let repo = InMemoryTaskRepository::builder()
///     .ttl(Duration::from_secs(3600))
///     .zone(Zone::named("Europe/Berlin").unwrap())
///     .clock(Arc::new(clock))
///     .build();
/// assert_eq!(repo.ttl(), Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone)]
pub struct InMemoryTaskRepositoryBuilder {
    pub(crate) ttl: Duration,
    pub(crate) zone: Zone,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) jobs_field: JobsField,
}

impl Default for InMemoryTaskRepositoryBuilder {
    fn default() -> Self {
        InMemoryTaskRepositoryBuilder {
            ttl: DEFAULT_TTL,
            zone: Zone::default(),
            clock: Arc::new(SystemClock),
            jobs_field: JobsField::default(),
        }
    }
}

impl InMemoryTaskRepositoryBuilder {
    /// How long a task lives after its last write (default [`DEFAULT_TTL`]; at most 100
    /// years, [`MAX_TTL_SECONDS`], as on Redis: a longer TTL is cut to that). The metadata
    /// lives 60 s longer.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.min(Duration::from_secs(MAX_TTL_SECONDS));
        self
    }

    /// The name of the job list in records this repository creates (default `jobs`).
    pub fn jobs_field(mut self, field: JobsField) -> Self {
        self.jobs_field = field;
        self
    }

    /// The zone of `updated_at` and of log timestamps (default `Asia/Seoul`).
    pub fn zone(mut self, zone: Zone) -> Self {
        self.zone = zone;
        self
    }

    /// Where "now" comes from, for timestamps and expiry (default the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The repository, empty.
    pub fn build(self) -> InMemoryTaskRepository {
        InMemoryTaskRepository::from_builder(self)
    }
}
