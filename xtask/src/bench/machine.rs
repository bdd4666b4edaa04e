//! The machine a run measures on, how busy it was, and what `/proc` says
//! about one process: what docs/BENCHMARKS.md needs to be read honestly.

use std::fs;
use std::process::Command;
use std::time::Duration;

/// The machine, in a few lines for the report.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) memory: String,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
    pub(crate) date: String,
    /// `/proc/loadavg` when the run started.
    pub(crate) load_before: String,
}

impl Machine {
    pub(crate) fn describe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, name)| name.trim().to_owned());
        let memory = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|meminfo| {
                let kib: f64 = meminfo
                    .lines()
                    .find_map(|line| line.strip_prefix("MemTotal:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some(format!("{:.0} GiB", kib / 1024.0 / 1024.0))
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory,
            kernel: output_of("uname", &["-srm"]),
            rustc: output_of("rustc", &["--version"]),
            date: output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            load_before: load_average(),
        }
    }
}

/// The three load averages.
pub(crate) fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn output_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// CPU time so far: the whole machine's busy time (from `/proc/stat`) and
/// ours (this process and every child it has reaped: servers, load
/// generators, cargo). The difference over a run is what other work took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuClock {
    machine_busy: Duration,
    ours: Duration,
    wall: std::time::Instant,
}

impl CpuClock {
    pub(crate) fn now() -> Self {
        Self {
            machine_busy: machine_busy(),
            ours: own_cpu(),
            wall: std::time::Instant::now(),
        }
    }

    /// Cores busy on average since `start`: all work, ours, and the rest.
    pub(crate) fn since(start: &CpuClock) -> CpuShare {
        let end = Self::now();
        let wall = (end.wall - start.wall).as_secs_f64().max(1e-9);
        let busy = (end.machine_busy.saturating_sub(start.machine_busy)).as_secs_f64() / wall;
        let ours = (end.ours.saturating_sub(start.ours)).as_secs_f64() / wall;
        CpuShare {
            busy,
            ours,
            others: (busy - ours).max(0.0),
            wall: end.wall - start.wall,
        }
    }
}

/// Average cores in use over a stretch of time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuShare {
    pub(crate) busy: f64,
    pub(crate) ours: f64,
    pub(crate) others: f64,
    pub(crate) wall: Duration,
}

fn machine_busy() -> Duration {
    // The first line of /proc/stat: cpu user nice system idle iowait irq
    // softirq steal ..., in clock ticks.
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    // user..steal; guest time is already inside user.
    let total: u64 = ticks.iter().take(8).sum();
    ticks_to_duration(total.saturating_sub(idle))
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf takes a constant and has no other effect.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

fn own_cpu() -> Duration {
    let mut total = Duration::ZERO;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage writes into the struct we own; zeroed is a
        // valid rusage.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut usage);
            usage
        };
        for time in [usage.ru_utime, usage.ru_stime] {
            total += Duration::new(time.tv_sec as u64, time.tv_usec as u32 * 1000);
        }
    }
    total
}

/// Resident memory of process `pid`, in KiB (`VmRSS`).
pub(crate) fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|error| format!("cannot read /proc/{pid}/status: {error}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// CPU time process `pid` has used so far, all its threads, user and
/// system (`/proc/PID/stat`, in clock ticks: 10 ms steps).
pub(crate) fn process_cpu(pid: u32) -> Result<Duration, String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|error| format!("cannot read /proc/{pid}/stat: {error}"))?;
    // The command name is in parentheses and may hold spaces: count fields
    // after it. utime and stime are fields 14 and 15, so 12th and 13th
    // after the name.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<u64>().ok())
    };
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok(ticks_to_duration(user + system)),
        _ => Err(format!("cannot read the CPU times in /proc/{pid}/stat")),
    }
}

/// Open descriptors of process `pid`.
pub(crate) fn fd_count(pid: u32) -> Result<usize, String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .map_err(|error| format!("cannot list /proc/{pid}/fd: {error}"))
}

/// Raises this process's descriptor limit to its hard limit, so that the
/// servers and load generators it starts (which inherit it) can hold the
/// idle workload's connections. Returns the limit now in force.
pub(crate) fn raise_descriptor_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        limit.rlim_cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        assert!(process_cpu(u32::MAX).is_err());
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(fd_count(pid).unwrap() >= 3);
        // Burn CPU until the counter moves. It counts in clock ticks
        // (10 ms), and beside a CPU hog a fixed stretch of wall time may
        // not add up to one tick of our own; so spin until it does, for
        // at most 10 s of wall time.
        let before = process_cpu(pid).unwrap();
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        let mut after = before;
        while after == before && started.elapsed() < Duration::from_secs(10) {
            for _ in 0..100_000 {
                spin = std::hint::black_box(spin.wrapping_add(1));
            }
            after = process_cpu(pid).unwrap();
        }
        assert!(after > before, "no CPU time counted in 10 s of spinning");
        assert!(rss_kib(u32::MAX).is_err());
    }

    #[test]
    fn cpu_shares_are_never_negative() {
        let start = CpuClock::now();
        let share = CpuClock::since(&start);
        assert!(share.busy >= 0.0 && share.ours >= 0.0 && share.others >= 0.0);
    }
}
