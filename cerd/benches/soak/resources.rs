//! The soak's resource samples: each node's RSS and open descriptors every
//! 10 s, read from /proc by the pid of whichever process runs the node's
//! configuration now (a node restarted after a kill -9 is a new pid, and
//! its samples a new lifetime), and the report of their trend.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const EVERY: Duration = Duration::from_secs(10);
/// Growth worth a flag, per hour.
const RSS_KIB_PER_HOUR: f64 = 10.0 * 1024.0;
const FDS_PER_HOUR: f64 = 20.0;
/// The shortest window a trend is judged on.
const JUDGED_SPAN: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds since the run started.
    pub at: f64,
    pub node: usize,
    pub pid: u32,
    pub rss_kib: u64,
    pub fds: u64,
}

pub struct Sampler {
    /// Each node's `cerd.toml`, which its process's command line names.
    configs: Vec<PathBuf>,
    samples: Mutex<Vec<Sample>>,
    stop: AtomicBool,
}

impl Sampler {
    pub fn new(configs: Vec<PathBuf>) -> Sampler {
        Sampler {
            configs,
            samples: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        }
    }

    /// Samples every node every [`EVERY`] until [`Sampler::stop`].
    pub fn run(&self, started: Instant) {
        let mut next = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            if Instant::now() >= next {
                next += EVERY;
                let at = started.elapsed().as_secs_f64();
                let found = self
                    .configs
                    .iter()
                    .enumerate()
                    .filter_map(|(node, config)| {
                        let pid = pid_running(config)?;
                        Some(Sample {
                            at,
                            node,
                            pid,
                            rss_kib: rss_kib(pid)?,
                            fds: open_fds(pid)?,
                        })
                    });
                let found: Vec<Sample> = found.collect();
                self.samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(found);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The pid of the `cerd --config CONFIG run` process, if one runs.
fn pid_running(config: &std::path::Path) -> Option<u32> {
    let want = format!("--config\0{}\0run\0", config.display());
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .contains(&want)
                .then_some(pid)
        })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Least-squares slope of `points` (seconds, value), per hour.
fn slope_per_hour(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx * 3600.0)
}

/// Prints, per node: its lifetimes, RSS and descriptors (first, last, min,
/// max over the whole run) and the slope over the second half of the run,
/// on the node's longest lifetime there.
pub fn report(samples: &[Sample], ran: Duration, names: &[&str]) {
    let half = ran.as_secs_f64() / 2.0;
    println!(
        "resources, sampled every {} s ({} samples); slope: least squares over the second half of the run (after {half:.0} s), on each node's longest lifetime there",
        EVERY.as_secs(),
        samples.len()
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    for (node, name) in names.iter().enumerate() {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.node == node).collect();
        let (Some(first), Some(last)) = (mine.first(), mine.last()) else {
            println!("  {name}: no samples");
            continue;
        };
        let mut pids: Vec<u32> = mine.iter().map(|s| s.pid).collect();
        pids.dedup();
        let rss = mine.iter().map(|s| s.rss_kib);
        let fds = mine.iter().map(|s| s.fds);
        println!(
            "  {name}: {} lifetimes; RSS MiB first {:.1} last {:.1} min {:.1} max {:.1}; fds first {} last {} min {} max {}",
            pids.len(),
            mib(first.rss_kib),
            mib(last.rss_kib),
            mib(rss.clone().min().unwrap_or(0)),
            mib(rss.max().unwrap_or(0)),
            first.fds,
            last.fds,
            fds.clone().min().unwrap_or(0),
            fds.max().unwrap_or(0)
        );
        if pids.len() > 1 {
            for pid in &pids {
                let life: Vec<&&Sample> = mine.iter().filter(|s| s.pid == *pid).collect();
                println!(
                    "      pid {pid}: {:.0}-{:.0} s, RSS MiB first {:.1} max {:.1} last {:.1}, fds max {}",
                    life[0].at,
                    life[life.len() - 1].at,
                    mib(life[0].rss_kib),
                    mib(life.iter().map(|s| s.rss_kib).max().unwrap_or(0)),
                    mib(life[life.len() - 1].rss_kib),
                    life.iter().map(|s| s.fds).max().unwrap_or(0)
                );
            }
        }
        let mut lifetimes: BTreeMap<u32, Vec<&Sample>> = BTreeMap::new();
        for s in mine.iter().filter(|s| s.at >= half) {
            lifetimes.entry(s.pid).or_default().push(s);
        }
        let Some((pid, longest)) = lifetimes.into_iter().max_by_key(|(_, l)| l.len()) else {
            continue;
        };
        let points = |f: fn(&Sample) -> f64| -> Vec<(f64, f64)> {
            longest.iter().map(|s| (s.at, f(s))).collect()
        };
        let rss_slope = slope_per_hour(&points(|s| s.rss_kib as f64));
        let fd_slope = slope_per_hour(&points(|s| s.fds as f64));
        let span = longest.last().map_or(0.0, |s| s.at) - longest[0].at;
        // A shorter window measures the warm-up (caches filling), not a
        // leak.
        let judged = span >= JUDGED_SPAN.as_secs_f64();
        let flag = |growing: bool| match (judged, growing) {
            (true, true) => " GROWTH",
            _ => "",
        };
        match (rss_slope, fd_slope) {
            (Some(r), Some(f)) => println!(
                "      trend (pid {pid}, {} samples over {span:.0} s): RSS {:+.1} MiB/h{}, fds {f:+.1}/h{}{}",
                longest.len(),
                r / 1024.0,
                flag(r > RSS_KIB_PER_HOUR),
                flag(f > FDS_PER_HOUR),
                if judged { "" } else { "   (window under 10 min: not judged)" }
            ),
            _ => println!(
                "      trend: too few samples in the second half ({})",
                longest.len()
            ),
        }
    }
}
