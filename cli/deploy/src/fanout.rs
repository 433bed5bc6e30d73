//! One task per host `--limit` selects, at most `forks` at a time: the
//! fan-out of `status` and `uninstall` (apply runs its own lanes).

use hadeploy_inventory::model::{Host, Inventory};
use tokio::sync::Semaphore;

use crate::error::RunError;

/// Runs `task` on every host `limit` selects, `forks` at a time; the
/// results come back in host order, each beside its host.
pub async fn for_each_host<T>(
    inv: &Inventory,
    limit: &[String],
    forks: usize,
    task: impl AsyncFn(&Host) -> T,
) -> Result<Vec<(Host, T)>, RunError> {
    let hosts = RunError::select(inv, limit)?;
    let sem = Semaphore::new(forks.max(1));
    let tasks = hosts.iter().map(|h| async {
        let _permit = sem.acquire().await;
        task(h).await
    });
    let results = futures::future::join_all(tasks).await;
    Ok(hosts.into_iter().zip(results).collect())
}
