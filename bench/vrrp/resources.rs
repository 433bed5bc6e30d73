//! Memory and CPU of a daemon's processes, from /proc.

use anyhow::{Context, Result};

/// Sum of VmRSS over `pids`, in KiB.
pub fn rss_kib(pids: &[i32]) -> Result<u64> {
    let mut total = 0;
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("read /proc/{pid}/status"))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("no VmRSS for {pid}"))?;
        total += kib;
    }
    Ok(total)
}

/// Sum of utime + stime over `pids` (all threads of each), in clock ticks.
pub fn cpu_ticks(pids: &[i32]) -> Result<u64> {
    let mut total = 0;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("read /proc/{pid}/stat"))?;
        // The command name may contain spaces; fields restart after ')'.
        // There, index 0 is field 3 (state): utime is field 14, stime 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        let (u, s) = get(11)
            .zip(get(12))
            .with_context(|| format!("bad /proc/{pid}/stat"))?;
        total += u + s;
    }
    Ok(total)
}

pub fn ticks_per_sec() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(100) // USER_HZ is 100 on every Linux architecture we ship
}

/// On-CPU time of every thread of `pids`, in ns, from
/// /proc/PID/task/*/schedstat (first field): far finer than the 10 ms ticks
/// of utime + stime, which over 20 s resolve only 0.05 % steps.
pub fn cpu_ns(pids: &[i32]) -> Result<u64> {
    let mut total = 0;
    for pid in pids {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .with_context(|| format!("list threads of {pid}"))?;
        for t in tasks.flatten() {
            // A thread that just exited has no file left: skip it.
            let Ok(text) = std::fs::read_to_string(t.path().join("schedstat")) else {
                continue;
            };
            total += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}
