//! One page of the task list. It reads the ids of the index (the store's cheapest listing),
//! finds the page among them, and reads the records of that page only, so a page costs the
//! same on 100 tasks as on 100,000. With a status filter, which no index holds, it reads
//! records in batches from the cursor on until the page is full; the caller bounds how many
//! such scans run at once.

use std::cmp::Ordering;

use task_state_core::{
    compare_task_ids, Result, Scope, TaskRecord, TaskRepository, TaskStatus, Unreadable,
};

/// What the list page asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) service: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) status: Option<TaskStatus>,
    /// Only ids after this one, in task id order.
    pub(crate) after: Option<String>,
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
}

/// One page.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub(crate) records: Vec<TaskRecord>,
    pub(crate) unreadable: Vec<Unreadable>,
    /// Ids in the index (without a status filter, the number of tasks listed, expired ones
    /// not yet cleaned included).
    pub(crate) ids_in_index: usize,
    /// The position of the page's first id in the index.
    pub(crate) first: usize,
    /// The cursor of the next page, when there is one.
    pub(crate) next: Option<String>,
    /// The cursor of the previous page: `Some(None)` for the first page, `None` when there
    /// is no previous page or it cannot be told (with a status filter).
    pub(crate) previous: Option<Option<String>>,
}

/// Reads one page of at most `size` tasks.
///
/// # Errors
/// [`task_state_core::Error::InvalidInput`] for a bad name in the filter; backend failures.
pub(crate) async fn page(repo: &dyn TaskRepository, filter: &Filter, size: usize) -> Result<Page> {
    let scope = filter.scope();
    scope.validate()?;
    let ids = repo.list_ids(&scope).await?;
    let start = match &filter.after {
        Some(after) => ids.partition_point(|id| compare_task_ids(id, after) != Ordering::Greater),
        None => 0,
    };
    let mut page = Page {
        ids_in_index: ids.len(),
        first: start,
        ..Page::default()
    };
    match filter.status {
        None => {
            let end = (start + size).min(ids.len());
            let list = repo.list_by_ids(&ids[start..end]).await?;
            page.records = list.records;
            page.unreadable = list.unreadable;
            if end < ids.len() && end > start {
                page.next = Some(ids[end - 1].clone());
            }
            if start > 0 {
                let previous = start.saturating_sub(size);
                page.previous = Some((previous > 0).then(|| ids[previous - 1].clone()));
            }
        }
        Some(status) => {
            let batch = size.max(100);
            let mut at = start;
            while at < ids.len() && page.records.len() < size {
                let end = (at + batch).min(ids.len());
                let list = repo.list_by_ids(&ids[at..end]).await?;
                page.unreadable.extend(list.unreadable);
                for record in list.records {
                    if record.status == status && page.records.len() < size {
                        page.records.push(record);
                    } else if page.records.len() == size {
                        break;
                    }
                }
                at = end;
                // A batch that the store answered at once (an in-memory one) must not keep
                // the task from being cancelled: the handler's future is dropped when its
                // client leaves, and the scan stops here.
                tokio::task::yield_now().await;
            }
            if page.records.len() == size {
                let last = &page.records[size - 1].task_id;
                let rest =
                    ids.partition_point(|id| compare_task_ids(id, last) != Ordering::Greater);
                if rest < ids.len() {
                    page.next = Some(last.clone());
                }
            }
            page.previous = (start > 0).then_some(None);
        }
    }
    Ok(page)
}
