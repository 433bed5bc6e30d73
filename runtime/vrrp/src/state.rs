//! The four states of a VRRP instance.

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

    /// The state word keepalived passes to `notify` scripts, so existing
    /// hook scripts keep working: entering Initialize is `STOP`.
    pub fn notify_str(&self) -> &'static str {
        match self {
            State::Initialize => "STOP",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_notify_words() {
        let words: Vec<_> = [
            State::Initialize,
            State::Backup,
            State::Master,
            State::Fault,
        ]
        .iter()
        .map(State::notify_str)
        .collect();
        assert_eq!(words, ["STOP", "BACKUP", "MASTER", "FAULT"]);
        assert_eq!(State::Master.as_str(), "master");
    }
}
