//! The links between pages: each name from the store percent-encoded as one path segment,
//! and the query of a filtered list.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::*;
use crate::listing::{Cursor, Filter, Sort};

/// Everything but the characters that never need encoding in a path segment or a query
/// value.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(crate) fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// What marks a name written in a path as a segment of dots only: no task id, service or
/// user id contains `:`, so the mark is never part of a name.
pub(crate) const DOTS_MARK: char = ':';

/// `name` as one path segment. A name of dots only (`.`, `..`) would be a dot segment, which
/// browsers resolve away (`/tasks/..` is `/`), and so would its percent-encoded form
/// (`%2E%2E` is a dot segment to them too); it is written after [`DOTS_MARK`] instead
/// (`%3A..`), which [`name_of_segment`] takes off again.
pub(crate) fn segment(name: &str) -> String {
    if !name.is_empty() && name.bytes().all(|b| b == b'.') {
        encode(&format!("{DOTS_MARK}{name}"))
    } else {
        encode(name)
    }
}

/// The name a decoded path segment made by [`segment`] stands for.
pub(crate) fn name_of_segment(decoded: String) -> String {
    match decoded.strip_prefix(DOTS_MARK) {
        Some(dots) if !dots.is_empty() && dots.bytes().all(|b| b == b'.') => dots.to_owned(),
        _ => decoded,
    }
}

pub(crate) fn task_url(task_id: &str) -> String {
    format!("/tasks/{}", segment(task_id))
}

pub(super) fn users_url(service: &str) -> String {
    format!("/services/{}/users", segment(service))
}

/// The task list's query for `filter`'s fields and order, without a cursor.
fn filter_query(filter: &Filter) -> Vec<String> {
    let mut query = Vec::new();
    if let Some(service) = &filter.service {
        query.push(format!("service={}", encode(service)));
    }
    if let Some(user) = &filter.user {
        query.push(format!("user={}", encode(user)));
    }
    if let Some(status) = filter.status {
        query.push(format!("status={status}"));
    }
    if let Some(prefix) = &filter.id_prefix {
        query.push(format!("id={}", encode(prefix)));
    }
    if let Some(sort) = filter.sort.param() {
        query.push(format!("sort={sort}"));
    }
    query
}

/// `path` with `query`.
fn with_query(path: &str, query: &[String]) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// The task list with `filter`'s fields and order, from `cursor`.
pub(super) fn list_url(filter: &Filter, cursor: &Cursor) -> String {
    let mut query = filter_query(filter);
    match cursor {
        Cursor::Start => {}
        Cursor::After(after) => query.push(format!("after={}", encode(after))),
        Cursor::Offset(n) => query.push(format!("from={n}")),
    }
    with_query("/tasks", &query)
}

/// The confirmation of `action` on every task of `filter`.
pub(crate) fn bulk_url(filter: &Filter, action: Action) -> String {
    let query = filter_query(&Filter {
        sort: Sort::default(),
        ..filter.clone()
    });
    with_query(&format!("/bulk/{}", action.as_str()), &query)
}

/// A filter of one service, and one user in it.
pub(super) fn of_service(service: &str, user: Option<&str>) -> Filter {
    Filter {
        service: Some(service.to_owned()),
        user: user.map(str::to_owned),
        ..Filter::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any name a record may hold (no `:`, no control character) comes back from its
        /// link's path as a browser resolves it, dots-only names included.
        #[test]
        fn a_name_survives_its_link(name in "[.]{1,4}|[^:\\p{Cc}]{1,12}") {
            let link = task_url(&name);
            let base = url::Url::parse("http://console.invalid/").unwrap();
            let resolved = base.join(&link).unwrap();
            proptest::prop_assert_eq!(resolved.path(), link.as_str());
            let raw = link.strip_prefix("/tasks/").unwrap();
            let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().unwrap();
            proptest::prop_assert_eq!(name_of_segment(decoded.into_owned()), name);
        }
    }
}
