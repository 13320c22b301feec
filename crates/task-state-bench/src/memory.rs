//! The process's memory, as Linux reports it in `/proc/self/status`.

/// Peak resident set size (`VmHWM`) in bytes, `None` where `/proc` is not there.
pub fn peak_rss_bytes() -> Option<u64> {
    status_field("VmHWM")
}

/// Current resident set size (`VmRSS`) in bytes.
pub fn rss_bytes() -> Option<u64> {
    status_field("VmRSS")
}

fn status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_field(&status, name)
}

/// Reads a `Name:   1234 kB` line of a `/proc/<pid>/status` text, in bytes.
pub fn parse_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// Bytes in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let status = "Name:\tx\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_field(status, "VmHWM"), Some(20 * 1024 * 1024));
        assert_eq!(parse_field(status, "VmRSS"), Some(10 * 1024 * 1024));
        assert_eq!(parse_field(status, "VmPeak"), None);
    }

    #[test]
    fn reads_this_process() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(peak_rss_bytes().unwrap() >= rss_bytes().unwrap() / 2);
        }
    }
}
