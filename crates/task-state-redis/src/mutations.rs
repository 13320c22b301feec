//! The plumbing of [`RedisTaskRepository`]'s mutations: the arguments of the record-editing
//! scripts, the one way they run (on a cluster, the single-node script or the optimistic
//! write path of `src/write/`), and what their replies mean, with the record or without it
//! (`ack`).

use fred::prelude::Value;
use task_state_core::{
    format_log_entry_at, json_string, validate_record, Error, Result, TaskRecord, TaskStatus,
};

use crate::cluster;
use crate::execution::Topology;
use crate::keys;
use crate::replies::{conflict, Outcome};
use crate::repository::RedisTaskRepository;
use crate::scan;
use crate::scripts::{Script, SCRIPTS};

impl RedisTaskRepository {
    /// Runs a script on a task's record and metadata keys ([`Executor::exec`](crate::execution::Executor::exec)).
    pub(crate) async fn eval(
        &self,
        script: &Script,
        task_id: &str,
        args: Vec<String>,
    ) -> Result<Value> {
        let keys = vec![keys::record(task_id), keys::metadata(task_id)];
        let record = keys::record(task_id);
        // (Boxed: the script's call is a large future, which the mutations whose optimistic
        // path answers would otherwise carry, and copy, at every call.)
        Box::pin(self.exec().exec(script, keys, args))
            .await
            .map_err(|f| {
                f.scripting((&record, "string"), format!("updating task {task_id:?}"))
                    .into()
            })
    }

    /// Runs one of the record-editing scripts with the common arguments.
    async fn mutate(
        &self,
        script: &Script,
        task_id: &str,
        want_record: bool,
        extra: Vec<String>,
    ) -> Result<Outcome> {
        let mut args = Vec::with_capacity(3 + extra.len());
        args.push(self.exec().ttl());
        args.push(json_string(&self.now().to_string()));
        args.push(if want_record { "record" } else { "ack" }.to_owned());
        args.extend(extra);
        let reply = match self.exec().topology() {
            // (Boxed: a cluster's edit is a large future, which a single node's mutations
            // would otherwise carry, and copy, at every call.)
            Topology::Cluster => {
                Box::pin(cluster::edit(self.exec(), script, task_id, args)).await?
            }
            Topology::SingleNode => {
                match crate::write::optimistic(self.exec(), script, task_id, &args).await? {
                    // Issue 21: the edit made in Rust and written with WATCH or IFEQ (src/write/).
                    Some(reply) => reply,
                    None => self.eval(script, task_id, args).await?,
                }
            }
        };
        Outcome::of(reply, script)
    }

    /// A mutation that returns the updated record; a conflict names the statuses `from`
    /// that the mutation expected.
    pub(crate) async fn mutate_record(
        &self,
        script: &Script,
        task_id: &str,
        from: &[TaskStatus],
        extra: Vec<String>,
    ) -> Result<Option<TaskRecord>> {
        match self.mutate(script, task_id, true, extra).await? {
            Outcome::Missing => Ok(None),
            Outcome::Done(Some(json)) => self
                .decode(&keys::record(task_id), json.as_bytes())
                .map(Some),
            Outcome::Done(None) => Err(Error::backend("script returned no record")),
            Outcome::Conflict(current) => Err(conflict(task_id, &current, from)),
        }
    }

    /// A mutation whose caller drops the record: the script answers without it (`ack`).
    /// `true` when it applied, `false` when the task does not exist; a conflict names the
    /// statuses `from` that the mutation expected.
    pub(crate) async fn mutate_ack(
        &self,
        script: &Script,
        task_id: &str,
        from: &[TaskStatus],
        extra: Vec<String>,
    ) -> Result<bool> {
        match self.mutate(script, task_id, false, extra).await? {
            Outcome::Missing => Ok(false),
            Outcome::Done(_) => Ok(true),
            Outcome::Conflict(current) => Err(conflict(task_id, &current, from)),
        }
    }

    /// Log entries for the scripts: each message stamped now, as a JSON string.
    pub(crate) fn entries(
        &self,
        messages: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Vec<String> {
        let now = self.now();
        messages
            .into_iter()
            .map(|m| json_string(&format_log_entry_at(m.as_ref(), now)))
            .collect()
    }

    /// `set_status.lua`'s own arguments: the new status, the statuses it may change from
    /// (any when empty) and the log entry (none when empty).
    pub(crate) fn status_args(
        &self,
        from: &[TaskStatus],
        to: TaskStatus,
        log_entry: Option<&str>,
    ) -> Vec<String> {
        let allowed: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let mut extra = vec![json_string(to.as_str()), allowed.join(" ")];
        extra.extend(self.entries(log_entry.filter(|m| !m.is_empty())));
        extra
    }

    /// `update_result.lua`'s own arguments: each field as a JSON string, or `''` to keep it.
    pub(crate) fn result_args(
        pod_status: Option<&str>,
        launcher_output: Option<&str>,
    ) -> Vec<String> {
        let encode = |v: Option<&str>| v.map(json_string).unwrap_or_default();
        vec![encode(pod_status), encode(launcher_output)]
    }

    /// `set_jobs.lua`'s own arguments: the job ids as a JSON array, and the member a record
    /// without either gets.
    pub(crate) fn jobs_args(&self, jobs: &[String]) -> Result<Vec<String>> {
        let jobs = task_state_core::serde_json::to_string(jobs)
            .map_err(|e| Error::backend(format!("encoding job ids: {e}")))?;
        Ok(vec![jobs, self.settings().jobs_field().as_str().to_owned()])
    }

    /// Deletes a task: on a cluster, its keys slot by slot; else optimistically where the
    /// write path does (src/write/, issue 21), or by `remove.lua`. Whether anything was
    /// removed.
    pub(crate) async fn remove(&self, task_id: &str) -> Result<bool> {
        let exec = self.exec();
        if exec.topology() == Topology::Cluster {
            return Box::pin(cluster::delete(exec, task_id)).await;
        }
        if let Some(removed) = crate::write::optimistic_delete(exec, task_id).await? {
            return Ok(removed);
        }
        let args = vec![task_id.to_owned(), "delete".to_owned()];
        let reply = self.eval(&SCRIPTS.remove, task_id, args).await?;
        Ok(crate::replies::int_pair(&reply).0 > 0)
    }

    /// `save.lua` in `mode` `save` or `create`.
    pub(crate) async fn store(&self, mut record: TaskRecord, mode: &str) -> Result<TaskRecord> {
        validate_record(&record)?;
        record.updated_at = self.now();
        record.adopt_jobs_field(self.settings().jobs_field());
        if self.exec().topology() == Topology::Cluster {
            if Box::pin(cluster::store(self.exec(), &record, mode)).await? {
                return Ok(record);
            }
            return Err(Error::AlreadyExists {
                task_id: record.task_id,
            });
        }
        let json = record.to_json();
        let ttl = self.exec().ttl();
        // Issue 21: the record written with WATCH (src/write/) where the path allows.
        let owner = (record.service.clone(), record.user_id.clone());
        let create = mode == "create";
        let written = crate::write::optimistic_store(
            self.exec(),
            &record.task_id,
            &ttl,
            &json,
            &owner,
            create,
        );
        let reply = match written.await? {
            Some(reply) => reply,
            None => {
                // Where the members of a quick edit stand: the save leaves a layout hint.
                let hint = crate::hint::save_hint(&json, &record.service, &record.user_id);
                let args = vec![
                    ttl,
                    record.task_id.clone(),
                    record.service.clone(),
                    record.user_id.clone(),
                    json,
                    mode.to_owned(),
                    hint,
                ];
                self.eval(&SCRIPTS.save, &record.task_id, args).await?
            }
        };
        if scan::text(&reply).as_deref() == Some("EXISTS") {
            return Err(Error::AlreadyExists {
                task_id: record.task_id,
            });
        }
        Ok(record)
    }
}
