//! What the service manager is told (systemd's `Type=notify` protocol):
//! ready once the store is open and the API is listening, reloading while
//! SIGHUP's reload runs, stopping once shutdown begins.
//!
//! Architecture invariant: this is the only module that imports
//! sd-notify. Without `NOTIFY_SOCKET` in the environment (not started by
//! systemd) every call does nothing. A message that cannot be sent is
//! logged, never fatal: the node serves either way.

use sd_notify::NotifyState;

/// The node is serving: store open, API socket (and the other listeners)
/// bound. `status` is the one line `systemctl status` shows.
pub fn ready(status: &str) {
    send("ready", &[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload (SIGHUP) began. systemd wants the monotonic time with it, so
/// it can tell this reload's READY=1 from an earlier one.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(
            "reloading",
            &[
                NotifyState::Reloading,
                now,
                NotifyState::Status("reloading"),
            ],
        ),
        Err(_) => send(
            "reloading",
            &[NotifyState::Reloading, NotifyState::Status("reloading")],
        ),
    }
}

/// Shutdown began: requests in flight finish, the store is flushed.
pub fn stopping() {
    send(
        "stopping",
        &[NotifyState::Stopping, NotifyState::Status("stopping")],
    );
}

fn send(what: &str, states: &[NotifyState<'_>]) {
    // Kept in the environment (false): reloads and shutdown notify again.
    // Playbook processes never see it: they start with a cleared
    // environment.
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot tell the service manager the node is {what}");
    }
}
