//! Signals the daemons share: SIGHUP (reload) and SIGUSR1 (reopen logs)
//! become requests on a channel; SIGTERM, SIGQUIT and SIGINT resolve the
//! stop receiver once. Each daemon decides what a request means for it.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Reload,
    ReopenLogs,
}

/// Starts watching; must be called inside a tokio runtime.
pub fn watch() -> anyhow::Result<(mpsc::Receiver<Request>, oneshot::Receiver<()>)> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (req_tx, req_rx) = mpsc::channel(4);
    let (stop_tx, stop_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut stop_tx = Some(stop_tx);
        loop {
            let req = tokio::select! {
                _ = hup.recv() => Request::Reload,
                _ = usr1.recv() => Request::ReopenLogs,
                _ = term.recv() => { stop(&mut stop_tx); continue; }
                _ = quit.recv() => { stop(&mut stop_tx); continue; }
                _ = int.recv() => { stop(&mut stop_tx); continue; }
            };
            if req_tx.send(req).await.is_err() {
                break;
            }
        }
    });
    Ok((req_rx, stop_rx))
}

fn stop(tx: &mut Option<oneshot::Sender<()>>) {
    if let Some(t) = tx.take() {
        let _ = t.send(());
    }
}

/// Runs a reload between systemd's RELOADING=1 and READY=1.
pub fn reloading(f: impl FnOnce()) {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
    f();
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}

/// Logs a loader's warnings (they never stop a daemon).
pub fn log_warnings(warnings: Vec<hadeploy_config::Diagnostic>) {
    for w in warnings {
        tracing::warn!("{w}");
    }
}
