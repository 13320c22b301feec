//! `result <ID> [--pod-status S] [--launcher-output S | --launcher-output-file F]`.

use std::io::Read;
use std::path::Path;

use task_state_core::TaskRepository;

use crate::cli::ResultArgs;
use crate::failure::{Exit, Failure};

pub(crate) async fn run(repo: &dyn TaskRepository, args: ResultArgs) -> Result<(), Failure> {
    let launcher_output = match (&args.launcher_output, &args.launcher_output_file) {
        (Some(text), _) => Some(text.clone()),
        (None, Some(path)) => Some(read_output(path)?),
        (None, None) => None,
    };
    // The record is not printed: the backend need not send it.
    let applied = repo
        .update_result_ack(
            &args.id,
            args.pod_status.as_deref(),
            launcher_output.as_deref(),
        )
        .await?;
    if applied {
        Ok(())
    } else {
        Err(Failure::not_found(&args.id))
    }
}

/// The file's text (`-`: stdin). Launcher output is not always valid UTF-8; a stray byte
/// becomes U+FFFD rather than losing the rest.
fn read_output(path: &Path) -> Result<String, Failure> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().lock().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    read.map_err(|e| Failure::new(Exit::Error, format!("cannot read {}: {e}", path.display())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
