//! Helpers shared by the benchmarks.

// Each benchmark compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use cer_proto::api::FileIncident;
use cer_proto::model::{Classification, Severity, Tlp};

/// A TLP:GREEN, high-severity C2 incident with no indicators.
pub fn c2_incident(title: String) -> FileIncident {
    let class = Classification::parse("malicious-code/c2-server").expect("known class");
    FileIncident::new(title, Severity::High, Tlp::Green, class)
}

/// Prints p50, p90, p99 and max of `times` in milliseconds.
pub fn report_latency(times: &mut [Duration], target: &str) {
    if times.is_empty() {
        println!("no samples");
        return;
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms   {target}",
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(times[times.len() - 1])
    );
}
