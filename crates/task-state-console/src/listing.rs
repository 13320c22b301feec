//! One page of the task list. It reads the ids of the index (the store's cheapest listing),
//! keeps those that begin with the id searched for, finds the page among them, and reads the
//! records of that page only, so a page in task id order costs the same on 100 tasks as on
//! 100,000. With a status filter, which no index holds, it reads records in batches from the
//! cursor on until the page is full; sorted by another column than the id, it reads every
//! record of the index (keeping only the column's value and the id) before it can tell the
//! page. The caller bounds how many such scans run at once.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::ControlFlow;

use task_state_core::jiff::Timestamp;
use task_state_core::{
    compare_task_ids, Result, Scope, TaskList, TaskRecord, TaskRepository, TaskStatus, Unreadable,
};

/// A column the task list can be sorted by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Column {
    /// Task id order, as `task-state list` sorts (numeric ids numerically).
    #[default]
    Id,
    Service,
    User,
    Status,
    Priority,
    Created,
    Updated,
}

impl Column {
    /// Every column, in the table's order.
    pub(crate) const ALL: [Column; 7] = [
        Column::Id,
        Column::Service,
        Column::User,
        Column::Status,
        Column::Priority,
        Column::Created,
        Column::Updated,
    ];

    /// The name in `sort=`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Column::Id => "id",
            Column::Service => "service",
            Column::User => "user",
            Column::Status => "status",
            Column::Priority => "priority",
            Column::Created => "created",
            Column::Updated => "updated",
        }
    }

    /// The column's heading in the table.
    pub(crate) fn heading(self) -> &'static str {
        match self {
            Column::Id => "ID",
            Column::Service => "Service",
            Column::User => "User",
            Column::Status => "Status",
            Column::Priority => "Priority",
            Column::Created => "Created",
            Column::Updated => "Updated",
        }
    }

    /// What `record` holds in this column, as it sorts; ties go in task id order.
    fn key(self, record: &TaskRecord) -> Key {
        match self {
            Column::Id => Key::Text(String::new()),
            Column::Service => Key::Text(record.service.clone()),
            Column::User => Key::Text(record.user_id.clone()),
            Column::Status => Key::Number(status_rank(record.status)),
            Column::Priority => Key::Number(record.priority as i64),
            Column::Created => Key::Number(micros(record.created_at.timestamp())),
            Column::Updated => Key::Number(micros(record.updated_at.timestamp())),
        }
    }
}

/// Statuses sort in lifecycle order.
fn status_rank(status: TaskStatus) -> i64 {
    TaskStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or(TaskStatus::ALL.len()) as i64
}

fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

/// A column's value as it sorts.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Number(i64),
    Text(String),
}

/// The order of the list: a column, ascending or descending (`sort=-updated`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sort {
    pub(crate) column: Column,
    pub(crate) descending: bool,
}

impl Sort {
    /// `id`, `-updated`, ...; `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<Sort> {
        let (descending, name) = match text.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, text),
        };
        let column = Column::ALL.into_iter().find(|c| c.as_str() == name)?;
        Some(Sort { column, descending })
    }

    /// The value of `sort=`, `None` for the default order (task id, ascending).
    pub(crate) fn param(self) -> Option<String> {
        if self == Sort::default() {
            return None;
        }
        let sign = if self.descending { "-" } else { "" };
        Some(format!("{sign}{}", self.column.as_str()))
    }

    /// Whether a page in this order needs every record of the index read.
    pub(crate) fn reads_every_record(self) -> bool {
        self.column != Column::Id
    }

    fn ids(self, a: &str, b: &str) -> Ordering {
        let order = compare_task_ids(a, b);
        if self.descending {
            order.reverse()
        } else {
            order
        }
    }
}

/// What the list page asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) service: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) status: Option<TaskStatus>,
    /// Only ids that begin with this.
    pub(crate) id_prefix: Option<String>,
    pub(crate) sort: Sort,
    /// Where the page begins.
    pub(crate) cursor: Cursor,
}

/// Where a page begins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Cursor {
    /// The first page.
    #[default]
    Start,
    /// In task id order: the ids after this one (`after=`).
    After(String),
    /// Sorted by another column: this many tasks in (`from=`).
    Offset(usize),
}

impl Filter {
    pub(crate) fn scope(&self) -> Scope {
        match (self.service.clone(), self.user.clone()) {
            (Some(service), Some(user_id)) => Scope::ServiceUser { service, user_id },
            (Some(service), None) => Scope::Service(service),
            (None, Some(user_id)) => Scope::User(user_id),
            (None, None) => Scope::All,
        }
    }

    /// Whether anything narrows the list down (the cursor and the order do not).
    pub(crate) fn narrows(&self) -> bool {
        self.service.is_some()
            || self.user.is_some()
            || self.status.is_some()
            || self.id_prefix.is_some()
    }

    /// Whether a page of this filter may read every record of the index.
    pub(crate) fn scans(&self) -> bool {
        self.status.is_some() || self.sort.reads_every_record()
    }

    /// The ids of the scope that begin with the prefix, in the filter's id order.
    async fn ids(&self, repo: &dyn TaskRepository) -> Result<Vec<String>> {
        let scope = self.scope();
        scope.validate()?;
        let mut ids = repo.list_ids(&scope).await?;
        if let Some(prefix) = &self.id_prefix {
            ids.retain(|id| id.starts_with(prefix.as_str()));
        }
        if self.sort.column == Column::Id && self.sort.descending {
            ids.reverse();
        }
        Ok(ids)
    }
}

/// One page.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub(crate) records: Vec<TaskRecord>,
    pub(crate) unreadable: Vec<Unreadable>,
    /// Ids in the index that begin with the prefix (without a status filter, the number of
    /// tasks listed, expired ones not yet cleaned included).
    pub(crate) ids_in_index: usize,
    /// Tasks that match the whole filter, when the page had to read them all to know.
    pub(crate) matched: Option<usize>,
    /// The position of the page's first id among those listed.
    pub(crate) first: usize,
    /// The cursor of the next page, when there is one.
    pub(crate) next: Option<Cursor>,
    /// The cursor of the previous page, `None` when there is none or it cannot be told
    /// (with a status filter in task id order).
    pub(crate) previous: Option<Cursor>,
}

/// Reads one page of at most `size` tasks.
///
/// # Errors
/// [`task_state_core::Error::InvalidInput`] for a bad name in the filter; backend failures.
pub(crate) async fn page(repo: &dyn TaskRepository, filter: &Filter, size: usize) -> Result<Page> {
    let ids = filter.ids(repo).await?;
    if filter.sort.reads_every_record() {
        return sorted_page(repo, filter, ids, size).await;
    }
    let sort = filter.sort;
    let start = match &filter.cursor {
        Cursor::After(after) => ids.partition_point(|id| sort.ids(id, after) != Ordering::Greater),
        Cursor::Offset(n) => (*n).min(ids.len()),
        Cursor::Start => 0,
    };
    let mut page = Page {
        ids_in_index: ids.len(),
        first: start,
        ..Page::default()
    };
    match filter.status {
        None => {
            let end = (start + size).min(ids.len());
            let list = records_of(repo, &ids[start..end]).await?;
            page.records = list.records;
            page.unreadable = list.unreadable;
            if end < ids.len() && end > start {
                page.next = Some(Cursor::After(ids[end - 1].clone()));
            }
            if start > 0 {
                let previous = start.saturating_sub(size);
                page.previous = Some(match previous {
                    0 => Cursor::Start,
                    n => Cursor::After(ids[n - 1].clone()),
                });
            }
        }
        Some(status) => {
            let mut records = Vec::with_capacity(size);
            page.unreadable = each_record(repo, &ids[start..], size, |record| {
                if record.status == status {
                    records.push(record);
                }
                if records.len() == size {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .await?;
            page.records = records;
            if page.records.len() == size {
                let last = &page.records[size - 1].task_id;
                let rest = ids.partition_point(|id| sort.ids(id, last) != Ordering::Greater);
                if rest < ids.len() {
                    page.next = Some(Cursor::After(last.clone()));
                }
            }
            page.previous = (start > 0).then_some(Cursor::Start);
        }
    }
    Ok(page)
}

/// A page sorted by a column other than the id: every record of `ids` is read, its value in
/// the column kept with its id, and the page's records read again.
async fn sorted_page(
    repo: &dyn TaskRepository,
    filter: &Filter,
    ids: Vec<String>,
    size: usize,
) -> Result<Page> {
    let Sort { column, descending } = filter.sort;
    let mut keyed: Vec<(Key, String)> = Vec::new();
    each_record(repo, &ids, size, |record| {
        if filter.status.is_none_or(|s| s == record.status) {
            keyed.push((column.key(&record), record.task_id));
        }
        ControlFlow::Continue(())
    })
    .await?;
    // Ties in task id order, whichever way the column goes.
    keyed.sort_by(|a, b| {
        let by_key = if descending {
            b.0.cmp(&a.0)
        } else {
            a.0.cmp(&b.0)
        };
        by_key.then_with(|| compare_task_ids(&a.1, &b.1))
    });
    let start = match filter.cursor {
        Cursor::Offset(n) => n.min(keyed.len()),
        Cursor::Start | Cursor::After(_) => 0,
    };
    let end = (start + size).min(keyed.len());
    let wanted: Vec<String> = keyed[start..end].iter().map(|(_, id)| id.clone()).collect();
    let list = records_of(repo, &wanted).await?;
    Ok(Page {
        records: list.records,
        unreadable: list.unreadable,
        ids_in_index: ids.len(),
        matched: Some(keyed.len()),
        first: start,
        next: (end < keyed.len()).then_some(Cursor::Offset(end)),
        previous: (start > 0).then(|| match start.saturating_sub(size) {
            0 => Cursor::Start,
            n => Cursor::Offset(n),
        }),
    })
}

/// The ids of every task of `filter` (its cursor and order aside) that `wanted` accepts, in
/// task id order, and the records that could not be read.
///
/// # Errors
/// [`task_state_core::Error::InvalidInput`] for a bad name in the filter; backend failures.
pub(crate) async fn matching(
    repo: &dyn TaskRepository,
    filter: &Filter,
    wanted: impl Fn(&TaskRecord) -> bool,
) -> Result<(Vec<String>, Vec<Unreadable>)> {
    let all = Filter {
        sort: Sort::default(),
        cursor: Cursor::Start,
        ..filter.clone()
    };
    let ids = all.ids(repo).await?;
    let mut matched = Vec::new();
    let unreadable = each_record(repo, &ids, 0, |record| {
        if filter.status.is_none_or(|s| s == record.status) && wanted(&record) {
            matched.push(record.task_id);
        }
        ControlFlow::Continue(())
    })
    .await?;
    Ok((matched, unreadable))
}

/// The records of `ids`, in the order of `ids` (a backend may answer in its own).
async fn records_of(repo: &dyn TaskRepository, ids: &[String]) -> Result<TaskList> {
    let mut list = repo.list_by_ids(ids).await?;
    let place: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    list.records
        .sort_by_key(|r| place.get(r.task_id.as_str()).copied().unwrap_or(usize::MAX));
    Ok(list)
}

/// Reads the records of `ids` in batches (of at least 100, and of `size` when larger), in
/// order, giving each to `each` until it breaks; the records that could not be read.
async fn each_record(
    repo: &dyn TaskRepository,
    ids: &[String],
    size: usize,
    mut each: impl FnMut(TaskRecord) -> ControlFlow<()>,
) -> Result<Vec<Unreadable>> {
    let batch = size.max(100);
    let mut unreadable = Vec::new();
    for chunk in ids.chunks(batch) {
        let list = records_of(repo, chunk).await?;
        unreadable.extend(list.unreadable);
        for record in list.records {
            if each(record).is_break() {
                return Ok(unreadable);
            }
        }
        // A batch that the store answered at once (an in-memory one) must not keep the task
        // from being cancelled: the handler's future is dropped when its client leaves, and
        // the scan stops here.
        tokio::task::yield_now().await;
    }
    Ok(unreadable)
}
