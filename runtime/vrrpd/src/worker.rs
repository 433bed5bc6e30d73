//! The `vrrp-worker` thread: a current-thread runtime for hooks and track
//! scripts, kept apart from the protocol thread so a slow or hung script
//! can never delay an advert.

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::error::VrrpdError;

/// The `vrrp-worker` thread's runtime, for hooks and track scripts.
pub(crate) struct Worker {
    pub(crate) handle: Handle,
    stop: oneshot::Sender<()>,
}

impl Worker {
    pub(crate) fn start() -> Result<Worker, VrrpdError> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("vrrp-worker".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        let _ = handle_tx.send(Ok(rt.handle().clone()));
                        let _ = rt.block_on(stop_rx);
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                    }
                }
            })
            .map_err(VrrpdError::Thread)?;
        // The thread sends exactly once before anything else can fail.
        match handle_rx.recv() {
            Ok(Ok(handle)) => Ok(Worker { handle, stop }),
            Ok(Err(e)) => Err(VrrpdError::Thread(e)),
            Err(_) => Err(VrrpdError::ThreadPanicked),
        }
    }

    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
    }
}
