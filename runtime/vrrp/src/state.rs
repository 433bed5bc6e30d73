//! The four states of a VRRP instance.

/// The machine's own states; what operators, the status document and hooks
/// see is `hadeploy_config::status::VrrpState` (`From<State>`).
///
/// RFC states, plus Fault (keepalived's, for a failed tracked interface or a
/// weight-0 track script: the node must not be master and must not compete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running: before `Startup` and after `Shutdown`.
    Initialize,
    Backup,
    Master,
    Fault,
}

impl State {
    /// Stable lowercase label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Initialize => "initialize",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(State::Master.as_str(), "master");
        assert_eq!(State::Initialize.as_str(), "initialize");
    }
}
