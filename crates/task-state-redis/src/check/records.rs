//! The records phase: every record against the indexes it belongs to and its metadata hash.

use std::collections::HashSet;

use super::*;

pub(super) async fn check_records(
    repo: &RedisTaskRepository,
    options: CheckOptions,
    report: &mut CheckReport,
    progress: &mut (impl FnMut(&CheckProgress) + Send),
) -> Result<()> {
    let estimated: u64 = repo
        .writer()
        .next()
        .with_options(&scan::resendable())
        .scard(keys::TASK_INDEX)
        .await
        .unwrap_or(0);
    // A user missing from a service's user set is one missing member, however many of
    // their tasks show it.
    let mut missing_users = HashSet::new();
    // Every type, so that a record or metadata key of another type is reported too.
    let mut pages = scan::KeyPages::new(repo.exec(), keys::scan_pattern(KeyFamily::Tasks), "");
    while let Some(keys) = pages.next().await? {
        for key in std::mem::take(&mut pages.not_utf8) {
            report.not_utf8(&key, None);
        }
        let ids = record_ids(repo, report, &keys).await?;
        check_page(repo, options, report, &mut missing_users, ids).await?;
        progress(&CheckProgress {
            phase: CheckPhase::Records,
            done: report.records + report.unreadable,
            estimated_total: Some(estimated),
        });
    }
    Ok(())
}

/// A user of a service's user set that a record showed missing: (the set, the user).
type MissingUsers = HashSet<(String, String)>;

/// The task ids of the records among `keys` (a SCAN page of `task:*`); the keys of the layout
/// that hold another type than it says are reported.
async fn record_ids(
    repo: &RedisTaskRepository,
    report: &mut CheckReport,
    keys: &[String],
) -> Result<Vec<String>> {
    let keys: Vec<(&str, String, &'static str)> = keys
        .iter()
        .filter_map(|k| task_key_kind(k).map(|(id, expected)| (k.as_str(), id, expected)))
        .collect();
    let names: Vec<String> = keys.iter().map(|k| k.0.to_owned()).collect();
    let types = scan::types(repo.writer().next(), names)
        .await
        .map_err(|e| repo.exec().backend(e, "checking records"))?;
    let mut ids = Vec::new();
    for ((key, id, expected), found) in keys.iter().zip(types) {
        if found == "none" {
            continue;
        }
        if found != *expected {
            report.wrong(key, expected, found);
        } else if *expected == "string" {
            ids.push(id.clone());
        }
    }
    Ok(ids)
}

/// The index sets a record of `owner` belongs in, each with the member it should hold.
type Expected = [(String, String); 5];

/// Checks the records of `ids` against their indexes and metadata, in one pipeline, and
/// repairs each broken task on request.
async fn check_page(
    repo: &RedisTaskRepository,
    options: CheckOptions,
    report: &mut CheckReport,
    missing_users: &mut MissingUsers,
    ids: Vec<String>,
) -> Result<()> {
    let found = owners(repo, &ids).await?;
    let client = repo.writer().next();
    let pipeline = client.pipeline().with_options(&scan::resendable());
    let mut checked = Vec::new();
    for (id, owner) in ids.iter().zip(found) {
        match owner {
            Found::Missing => {}
            Found::WrongType(kind) => report.wrong(&keys::record(id), "string", kind),
            Found::Unreadable(reason) => report.unreadable_record(keys::record(id), reason),
            Found::Owner(owner) => {
                report.records += 1;
                let (s, u) = (&owner.service, &owner.user_id);
                let expected: Expected = [
                    (keys::TASK_INDEX.to_owned(), id.clone()),
                    (keys::service_index(s), id.clone()),
                    (keys::service_users(s), u.clone()),
                    (keys::service_user_index(s, u), id.clone()),
                    (keys::user_index(u), id.clone()),
                ];
                for (key, member) in &expected {
                    let _: () = pipeline
                        .sismember(key.as_str(), member.as_str())
                        .await
                        .map_err(|e| repo.exec().backend(e, "checking indexes"))?;
                }
                let _: () = pipeline
                    .hmget(keys::metadata(id), vec!["service", "user_id"])
                    .await
                    .map_err(|e| repo.exec().backend(e, "checking metadata"))?;
                checked.push((id.clone(), owner, expected));
            }
        }
    }
    let answers: Vec<std::result::Result<Value, FredError>> = if checked.is_empty() {
        Vec::new()
    } else {
        scan::try_all(client, &pipeline)
            .await
            .map_err(|e| repo.exec().backend(e, "checking indexes"))?
    };
    let mut answers = answers.into_iter();
    for (id, owner, expected) in checked {
        let task = Checked {
            id,
            owner,
            expected,
        };
        judge(repo, options, report, missing_users, &mut answers, task).await?;
    }
    Ok(())
}

/// A record whose indexes and metadata were asked about.
struct Checked {
    id: String,
    owner: Owner,
    expected: Expected,
}

/// Reads the pipeline's answers for one task: counts what is missing, plans the task's
/// repair, and runs it on request.
async fn judge(
    repo: &RedisTaskRepository,
    options: CheckOptions,
    report: &mut CheckReport,
    missing_users: &mut MissingUsers,
    answers: &mut impl Iterator<Item = std::result::Result<Value, FredError>>,
    Checked {
        id,
        owner,
        expected,
    }: Checked,
) -> Result<()> {
    let mut broken = false;
    let mut add_to = Vec::new();
    // A key of the wrong type: reported, and the task not repaired, since its
    // repair would write that key.
    let mut blocked = false;
    for (key, member) in &expected {
        let Some(present) =
            answer(answers.next()).map_err(|e| repo.exec().backend(e, "checking indexes"))?
        else {
            note_wrong_type(repo, report, key, "set").await?;
            blocked = true;
            continue;
        };
        if !matches!(present, Value::Integer(1) | Value::Boolean(true)) {
            broken = true;
            add_to.push(key.clone());
            let first = *key != keys::service_users(&owner.service)
                || missing_users.insert((key.clone(), member.clone()));
            if first {
                report.diff(key).missing += 1;
            }
        }
    }
    let meta_key = keys::metadata(&id);
    let mut metadata = false;
    match answer(answers.next()).map_err(|e| repo.exec().backend(e, "checking metadata"))? {
        None => {
            note_wrong_type(repo, report, &meta_key, "hash").await?;
            blocked = true;
        }
        Some(meta) => {
            let meta = match meta {
                Value::Array(fields) => fields.iter().map(text).collect::<Vec<_>>(),
                _ => Vec::new(),
            };
            if meta != [Some(owner.service.clone()), Some(owner.user_id.clone())] {
                report.metadata_mismatch += 1;
                broken = true;
                metadata = true;
            }
        }
    }
    if broken && !blocked {
        report.plan(Repair::Reindex {
            task_id: id.clone(),
            add_to,
            metadata,
        });
    }
    if broken && !blocked && options.repair {
        let keys = vec![keys::record(&id), meta_key];
        report.repaired +=
            run_script(repo, report, &SCRIPTS.reindex, (keys, "string"), vec![id]).await?;
    }
    Ok(())
}
