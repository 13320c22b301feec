//! The indexes and metadata phases: every index set and every metadata hash against the
//! records.

use super::*;

pub(super) async fn check_indexes(
    repo: &RedisTaskRepository,
    options: CheckOptions,
    report: &mut CheckReport,
    progress: &mut (impl FnMut(&CheckProgress) + Send),
) -> Result<()> {
    let mut done = 0;
    // Every type, so that an index key of another type is reported too.
    let mut pages = scan::KeyPages::new(repo.exec(), keys::scan_pattern(KeyFamily::Indexes), "");
    while let Some(keys) = pages.next().await? {
        for key in std::mem::take(&mut pages.not_utf8) {
            report.not_utf8(&key, None);
        }
        let keys: Vec<(String, IndexKind)> = keys
            .into_iter()
            .filter_map(|key| classify(&key).map(|kind| (key, kind)))
            .collect();
        let names: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let types = scan::types(repo.writer().next(), names)
            .await
            .map_err(|e| repo.exec().backend(e, "checking indexes"))?;
        for ((key, kind), found) in keys.into_iter().zip(types) {
            match found.as_str() {
                "set" => {
                    check_index(repo, options, report, &key, &kind, &mut done, progress).await?
                }
                "none" => {}
                _ => report.wrong(&key, "set", found),
            }
        }
    }
    Ok(())
}

/// One index set against the records, SSCAN page by SSCAN page.
async fn check_index(
    repo: &RedisTaskRepository,
    options: CheckOptions,
    report: &mut CheckReport,
    key: &str,
    kind: &IndexKind,
    done: &mut u64,
    progress: &mut (impl FnMut(&CheckProgress) + Send),
) -> Result<()> {
    let mut set_cursor = "0".to_owned();
    loop {
        let scan::Page {
            next: set_next,
            items: members,
            not_utf8,
        } = match scan::members_page(repo.writer().next(), key, &set_cursor).await {
            Ok(page) => page,
            // Replaced by a key of another type since the SCAN saw it.
            Err(e) if scan::is_wrong_type(&e) => {
                return note_wrong_type(repo, report, key, "set").await
            }
            Err(e) => return Err(repo.exec().backend(e, &format!("scanning {key}"))),
        };
        for member in not_utf8 {
            report.not_utf8(key, Some(member));
        }
        *done += members.len() as u64;
        let extra = match kind {
            IndexKind::Users(service) => {
                let found = users_without_tasks(repo, service, members.clone()).await?;
                for key in &found.wrong_type {
                    note_wrong_type(repo, report, key, "set").await?;
                }
                found.users
            }
            kind => tasks_not_belonging(repo, report, kind, &members).await?,
        };
        if !extra.is_empty() {
            report.diff(key).extra += extra.len() as u64;
            report.plan(Repair::RemoveFromIndex {
                key: key.to_owned(),
                members: extra.clone(),
            });
            if options.repair {
                let (script, mut args) = match kind {
                    IndexKind::Users(service) => (&SCRIPTS.prune, vec![format!("users:{service}")]),
                    IndexKind::Tasks => (
                        &SCRIPTS.unindex,
                        vec!["tasks".into(), String::new(), String::new()],
                    ),
                    IndexKind::Service(s) => (
                        &SCRIPTS.unindex,
                        vec!["service".into(), s.clone(), String::new()],
                    ),
                    IndexKind::ServiceUser(s, u) => (
                        &SCRIPTS.unindex,
                        vec!["service_user".into(), s.clone(), u.clone()],
                    ),
                    IndexKind::User(u) => (
                        &SCRIPTS.unindex,
                        vec!["user".into(), String::new(), u.clone()],
                    ),
                };
                args.extend(extra);
                report.repaired +=
                    run_script(repo, report, script, (vec![key.to_owned()], "set"), args).await?;
            }
        }
        progress(&CheckProgress {
            phase: CheckPhase::Indexes,
            done: *done,
            estimated_total: None,
        });
        set_cursor = set_next;
        if set_cursor == "0" {
            return Ok(());
        }
    }
}

/// The users of `index:service:{service}:users` without a task there, and the members that
/// are no user id (`""`, `a:b`: no task can name them); the reconciler prunes the same ones.
/// A user whose index is a key of the wrong type is not counted: its key is in `wrong_type`.
pub(crate) async fn users_without_tasks(
    repo: &RedisTaskRepository,
    service: &str,
    users: Vec<String>,
) -> Result<UsersWithoutTasks> {
    let (valid, mut users): (Vec<String>, Vec<String>) = users
        .into_iter()
        .partition(|user| validate_name("user id", user).is_ok());
    let keys: Vec<String> = valid
        .iter()
        .map(|user| keys::service_user_index(service, user))
        .collect();
    let counts = scan::per_key_each(repo.writer().next(), "SCARD", keys.clone())
        .await
        .map_err(|e| repo.exec().backend(e, "checking users"))?;
    let mut wrong_type = Vec::new();
    for ((user, key), count) in valid.into_iter().zip(keys).zip(counts) {
        match count {
            Ok(0) => users.push(user),
            Ok(_) => {}
            Err(e) if scan::is_wrong_type(&e) => wrong_type.push(key),
            Err(e) => return Err(repo.exec().backend(e, "checking users")),
        }
    }
    Ok(UsersWithoutTasks { users, wrong_type })
}

/// What [`users_without_tasks`] found.
pub(crate) struct UsersWithoutTasks {
    /// The users without a task, and the members that are no user id.
    pub(crate) users: Vec<String>,
    /// The users' task indexes that are keys of the wrong type.
    pub(crate) wrong_type: Vec<String>,
}

/// The ids of `ids` that do not belong in an index of `kind`: no record (or an empty
/// string), a record of another owner, or a member that is no task id (`""`, `a:b`: no
/// record can have it).
async fn tasks_not_belonging(
    repo: &RedisTaskRepository,
    report: &mut CheckReport,
    kind: &IndexKind,
    ids: &[String],
) -> Result<Vec<String>> {
    let (valid, mut extra): (Vec<String>, Vec<String>) = ids
        .iter()
        .cloned()
        .partition(|id| validate_task_id(id).is_ok());
    let found = owners(repo, &valid).await?;
    for (id, owner) in valid.into_iter().zip(found) {
        let belongs = match owner {
            Found::Missing => false,
            Found::WrongType(found) => {
                // Reported, and the index entry left alone.
                report.wrong(&keys::record(&id), "string", found);
                true
            }
            Found::Unreadable(_) => true, // reported in the records phase, left alone
            Found::Owner(owner) => match kind {
                IndexKind::Tasks => true,
                IndexKind::Service(s) => &owner.service == s,
                IndexKind::ServiceUser(s, u) => &owner.service == s && &owner.user_id == u,
                IndexKind::User(u) => &owner.user_id == u,
                IndexKind::Users(_) => true,
            },
        };
        if !belongs {
            extra.push(id);
        }
    }
    Ok(extra)
}

pub(super) async fn check_metadata(
    repo: &RedisTaskRepository,
    options: CheckOptions,
    report: &mut CheckReport,
    progress: &mut (impl FnMut(&CheckProgress) + Send),
) -> Result<()> {
    let mut done = 0;
    let mut pages =
        scan::KeyPages::new(repo.exec(), keys::scan_pattern(KeyFamily::Metadata), "hash");
    while let Some(keys) = pages.next().await? {
        let ids: Vec<String> = keys
            .iter()
            .filter_map(|k| match LayoutKey::parse(k)? {
                LayoutKey::Metadata(id) => Some(id),
                _ => None,
            })
            .collect();
        let keys: Vec<String> = ids.iter().map(|id| keys::record(id)).collect();
        // An empty string is no record: its metadata is an orphan too.
        let held = scan::holds_record(repo.writer().next(), keys)
            .await
            .map_err(|e| repo.exec().backend(e, "checking metadata"))?;
        for (id, held) in ids.iter().zip(held) {
            if !held {
                report.orphan_metadata += 1;
                report.plan(Repair::CleanOrphanMetadata {
                    task_id: id.clone(),
                });
                if options.repair {
                    match repo.handle_task_expired(id).await {
                        Ok(cleanup) if cleanup.removed => report.repaired += 1,
                        Ok(_) => {}
                        // The cleanup checks every key's type before it writes.
                        Err(Error::WrongType { key, expected }) => {
                            note_wrong_type(repo, report, &key, expected).await?
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        done += ids.len() as u64;
        progress(&CheckProgress {
            phase: CheckPhase::Metadata,
            done,
            estimated_total: None,
        });
    }
    Ok(())
}
