//! One user's index (`index:user:{user}`) checked against the records, and its repair.

use super::*;

/// What [`check_user`] does besides looking.
#[derive(Debug, Clone, Default)]
pub struct UserCheckOptions {
    /// Compare with this service's `index:service:{s}:user:{u}` only, instead of every
    /// service the user has such an index in.
    pub service: Option<String>,
    /// Repair `index:user:{u}` (and nothing else): add the missing ids, remove the extra ids
    /// whose record is gone or names another user. See [`check_user`].
    pub repair: bool,
}

/// What [`check_user`] found, with the field names of the DMS frontend's
/// `scripts/redis_index_consistency_check.py` when serialized.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UserIndexReport {
    /// The user checked.
    pub user_id: String,
    /// The services compared, sorted.
    pub services: Vec<String>,
    /// Members of `index:user:{u}`.
    pub user_index_count: u64,
    /// Distinct ids in the `index:service:{s}:user:{u}` sets of those services.
    pub service_union_count: u64,
    /// Ids of the services' sets that `index:user:{u}` lacks, in task id order.
    pub missing_in_user_index: Vec<String>,
    /// Ids of `index:user:{u}` that none of the services' sets has, in task id order.
    pub extra_in_user_index: Vec<String>,
    /// With repair: ids added to or removed from `index:user:{u}`; absent without repair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired: Option<u64>,
}

impl UserIndexReport {
    /// True when `index:user:{u}` holds exactly the services' ids.
    pub fn is_consistent(&self) -> bool {
        self.missing_in_user_index.is_empty() && self.extra_in_user_index.is_empty()
    }
}

/// The members of `key`, SSCAN page by page, on the writer. A key of another type is
/// [`Error::WrongType`].
async fn scan_members(
    repo: &RedisTaskRepository,
    key: &str,
    mut each: impl FnMut(Vec<String>) + Send,
) -> Result<()> {
    let mut cursor = "0".to_owned();
    loop {
        // A member that is not UTF-8 is no task id of the layout: the store-wide check
        // reports it.
        let scan::Page {
            next,
            items: members,
            ..
        } = match scan::members_page(repo.writer().next(), key, &cursor).await {
            Ok(page) => page,
            Err(e) if scan::is_wrong_type(&e) => {
                return Err(Error::WrongType {
                    key: key.to_owned(),
                    expected: "set",
                })
            }
            Err(e) => return Err(repo.exec().backend(e, &format!("scanning {key}"))),
        };
        each(members);
        if next == "0" {
            return Ok(());
        }
        cursor = next;
    }
}

/// The consistency check scoped like the DMS frontend's
/// `scripts/redis_index_consistency_check.py`: `index:user:{user_id}` against the union of
/// the `index:service:{s}:user:{user_id}` sets, of every service the user has one in (found
/// with SCAN pages) or of `options.service` only.
///
/// With `options.repair`, only `index:user:{user_id}` is written: the missing ids are added,
/// then every added or extra id is checked against its record by the atomic `unindex.lua`,
/// which removes it when the record is gone or names another user. An extra id whose record
/// names this user stays (its service's index is what lacks it: the store-wide [`check`]
/// repairs that), so a check afterwards may still find it. The index's TTL is set to the
/// configured TTL when the repair created the key, and otherwise only ever raised to it.
/// The report is the one found before the repair.
///
/// Memory holds the ids of this one user (and the service names), never the store.
///
/// # Errors
/// [`Error::InvalidInput`] for a bad user id or service, [`Error::WrongType`] when one of
/// the sets compared has another type, [`Error::Backend`] when Redis fails.
///
/// ```no_run
/// # async fn run(repo: task_state_redis::RedisTaskRepository) -> task_state_core::Result<()> {
/// use task_state_redis::{check_user, UserCheckOptions};
/// let report = check_user(&repo, "alice", UserCheckOptions::default()).await?;
/// println!("{}", task_state_core::serde_json::to_string(&report).unwrap());
/// # Ok(()) }
/// ```
pub async fn check_user(
    repo: &RedisTaskRepository,
    user_id: &str,
    options: UserCheckOptions,
) -> Result<UserIndexReport> {
    validate_name("user id", user_id)?;
    let services = match &options.service {
        Some(service) => {
            validate_name("service", service)?;
            vec![service.clone()]
        }
        None => {
            let pattern = keys::service_user_indexes_pattern(user_id);
            let mut services = std::collections::BTreeSet::new();
            let mut pages = scan::KeyPages::new(repo.exec(), &pattern, "set");
            while let Some(keys) = pages.next().await? {
                for key in keys {
                    if let Some(IndexKind::ServiceUser(s, u)) = classify(&key) {
                        if u == user_id {
                            services.insert(s);
                        }
                    }
                }
            }
            services.into_iter().collect()
        }
    };
    let mut union = std::collections::HashSet::new();
    for service in &services {
        let key = keys::service_user_index(service, user_id);
        scan_members(repo, &key, |members| union.extend(members)).await?;
    }
    let user_key = keys::user_index(user_id);
    let mut in_user = std::collections::HashSet::new();
    scan_members(repo, &user_key, |members| in_user.extend(members)).await?;
    let sorted = |ids: Vec<&String>| {
        let mut ids: Vec<String> = ids.into_iter().cloned().collect();
        ids.sort_by(|a, b| compare_task_ids(a, b));
        ids
    };
    let mut report = UserIndexReport {
        user_id: user_id.to_owned(),
        user_index_count: in_user.len() as u64,
        service_union_count: union.len() as u64,
        missing_in_user_index: sorted(union.difference(&in_user).collect()),
        extra_in_user_index: sorted(in_user.difference(&union).collect()),
        services,
        repaired: None,
    };
    if options.repair {
        report.repaired = Some(repair_user_index(repo, &report, &user_key).await?);
    }
    Ok(report)
}

/// What [`check_user`] with `repair` would change in `index:user:{u}`, found from the
/// report of a check without repair and the records it names, without writing anything
/// (`fsck --user U --repair --dry-run`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UserRepairPlan {
    /// Ids the repair would add: those of the services' sets whose record names this user
    /// (or cannot be read: the repair leaves such an id where it put it).
    pub add: Vec<String>,
    /// Ids the repair would remove: those of `index:user:{u}` alone whose record is gone,
    /// is a key of another type, or names another user.
    pub remove: Vec<String>,
}

/// The changes that [`check_user`] with `repair` would make, for `report` (a check
/// without repair). The repair may do less where a task changes meanwhile: it checks each
/// id against its record again, atomically.
///
/// # Errors
/// [`Error::Backend`] when Redis fails.
///
/// ```no_run
/// # async fn run(repo: task_state_redis::RedisTaskRepository) -> task_state_core::Result<()> {
/// use task_state_redis::{check_user, plan_user_repair, UserCheckOptions};
/// let report = check_user(&repo, "alice", UserCheckOptions::default()).await?;
/// let plan = plan_user_repair(&repo, &report).await?;
/// println!("would add {:?}, would remove {:?}", plan.add, plan.remove);
/// # Ok(()) }
/// ```
pub async fn plan_user_repair(
    repo: &RedisTaskRepository,
    report: &UserIndexReport,
) -> Result<UserRepairPlan> {
    let user = report.user_id.as_str();
    // An unreadable record cannot be judged: the repair leaves its id as it finds it.
    let stays = |found: &Found| match found {
        Found::Owner(owner) => owner.user_id == user,
        Found::Unreadable(_) => true,
        Found::Missing | Found::WrongType(_) => false,
    };
    let missing = owners(repo, &report.missing_in_user_index).await?;
    let extra = owners(repo, &report.extra_in_user_index).await?;
    Ok(UserRepairPlan {
        add: report
            .missing_in_user_index
            .iter()
            .zip(&missing)
            .filter(|(_, found)| stays(found))
            .map(|(id, _)| id.clone())
            .collect(),
        remove: report
            .extra_in_user_index
            .iter()
            .zip(&extra)
            .filter(|(_, found)| !stays(found))
            .map(|(id, _)| id.clone())
            .collect(),
    })
}

async fn repair_user_index(
    repo: &RedisTaskRepository,
    report: &UserIndexReport,
    user_key: &str,
) -> Result<u64> {
    let client = repo.writer().next().with_options(&scan::resendable());
    let ttl_before: i64 = repo
        .exec()
        .redirected(|| client.ttl(user_key))
        .await
        .map_err(|e| {
            repo.exec()
                .backend(e, &format!("reading the TTL of {user_key}"))
        })?;
    let mut added = 0u64;
    for page in report.missing_in_user_index.chunks(scan::PAGE) {
        let n: u64 = repo
            .exec()
            .redirected(|| client.sadd(user_key, page.to_vec()))
            .await
            .map_err(|e| repo.exec().backend(e, &format!("repairing {user_key}")))?;
        added += n;
    }
    let ttl = repo.settings().ttl_seconds();
    let created = ttl_before == -2 && added > 0;
    if created || (ttl_before >= 0 && (ttl_before as u64) < ttl) {
        let _: () = repo
            .exec()
            .redirected(|| client.expire(user_key, ttl as i64, None))
            .await
            .map_err(|e| {
                repo.exec()
                    .backend(e, &format!("setting the TTL of {user_key}"))
            })?;
    }
    // The check of every id against its record, atomic per page: what was just added (a task
    // deleted meanwhile) and what is extra.
    let mut removed = 0u64;
    let mut scratch = CheckReport::default();
    let candidates: Vec<&String> = report
        .missing_in_user_index
        .iter()
        .chain(&report.extra_in_user_index)
        .collect();
    for page in candidates.chunks(scan::PAGE) {
        let mut args = vec!["user".to_owned(), String::new(), report.user_id.clone()];
        args.extend(page.iter().map(|id| (*id).clone()));
        removed += run_script(
            repo,
            &mut scratch,
            &SCRIPTS.unindex,
            (vec![user_key.to_owned()], "set"),
            args,
        )
        .await?;
    }
    if let Some((key, wrong)) = scratch.wrong_type.into_iter().next() {
        return Err(Error::WrongType {
            key,
            expected: wrong.expected,
        });
    }
    Ok(added + removed)
}
