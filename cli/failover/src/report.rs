//! The failover table: step, expectation, measured outage, failed/total,
//! verdict; and its JSON form.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub step: String,
    pub expectation: String,
    pub outage_ms: Option<u64>,
    pub failed: usize,
    pub total: usize,
    pub verdict: Verdict,
    /// What was seen when it failed or was skipped.
    pub note: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cluster: String,
    pub vip: String,
    pub version: u8,
    pub advert_interval_ms: u64,
    pub master_down_interval_ms: u64,
    pub skew_time_ms: u64,
    pub rows: Vec<Row>,
    pub restore_errors: Vec<String>,
    pub interrupted: bool,
}

impl Report {
    pub fn passed(&self) -> bool {
        !self.interrupted
            && self.restore_errors.is_empty()
            && self.rows.iter().all(|r| r.verdict != Verdict::Fail)
    }

    pub fn table(&self) -> String {
        let mut s = format!(
            "test-failover: cluster {} VIP {} (VRRPv{}, advert {} ms; Master_Down_Interval {} ms, Skew_Time {} ms)\n",
            self.cluster,
            self.vip,
            self.version,
            self.advert_interval_ms,
            self.master_down_interval_ms,
            self.skew_time_ms
        );
        let w0 = self
            .rows
            .iter()
            .map(|r| r.step.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let w1 = self
            .rows
            .iter()
            .map(|r| r.expectation.len())
            .max()
            .unwrap_or(11)
            .max(11);
        s.push_str(&format!(
            "{:w0$}  {:w1$}  {:>9}  {:>13}  verdict\n",
            "step", "expectation", "outage", "failed/total"
        ));
        for r in &self.rows {
            let outage = r.outage_ms.map_or("-".to_string(), |o| format!("{o} ms"));
            let v = match r.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "SKIP",
            };
            s.push_str(&format!(
                "{:w0$}  {:w1$}  {:>9}  {:>13}  {v}{}\n",
                r.step,
                r.expectation,
                outage,
                format!("{}/{}", r.failed, r.total),
                if r.note.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", r.note)
                }
            ));
        }
        for e in &self.restore_errors {
            s.push_str(&format!("restore error: {e}\n"));
        }
        if self.interrupted {
            s.push_str("interrupted: faults were repaired\n");
        }
        s
    }
}
