//! Running an operation many times with a fixed number in flight, and what came of it.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

/// Latencies in nanoseconds, from 1 ns to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// Records `elapsed` in `hist`, clamping what falls outside its range.
pub fn record(hist: &mut Histogram<u64>, elapsed: Duration) {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    hist.saturating_record(nanos.max(1));
}

/// The outcome of [`measure`]: how many operations, how long in all, and each one's latency.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Operations completed.
    pub ops: u64,
    /// Wall time from the first start to the last completion.
    pub elapsed: Duration,
    /// Latency of each operation, in nanoseconds.
    pub latency: Histogram<u64>,
}

impl Measurement {
    /// Operations per second over the whole run.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at `quantile` (0.5 for the median), in microseconds.
    pub fn quantile_us(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Median latency in microseconds.
    pub fn p50_us(&self) -> f64 {
        self.quantile_us(0.50)
    }

    /// 99th percentile latency in microseconds.
    pub fn p99_us(&self) -> f64 {
        self.quantile_us(0.99)
    }
}

/// Runs `op(0)`, `op(1)`, ... `op(ops - 1)` with `concurrency` of them in flight at any
/// time: `concurrency` tasks each take the next index as soon as their previous operation
/// completes (a closed loop, as `redis-benchmark -c` runs its clients).
///
/// # Errors
/// The first error of an operation, with its index.
pub async fn measure<F, Fut>(ops: usize, concurrency: usize, op: F) -> Result<Measurement>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    measure_shared(ops, concurrency, Arc::new(op)).await
}

/// [`measure`] with the operation behind an `Arc`, to run it again in another round.
///
/// # Errors
/// As [`measure`].
pub async fn measure_shared<F, Fut>(
    ops: usize,
    concurrency: usize,
    op: Arc<F>,
) -> Result<Measurement>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let op = Arc::clone(&op);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut hist = histogram();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops {
                        return Ok::<_, anyhow::Error>(hist);
                    }
                    let began = Instant::now();
                    op(i).await.with_context(|| format!("operation {i}"))?;
                    record(&mut hist, began.elapsed());
                }
            })
        })
        .collect();
    let mut latency = histogram();
    for worker in workers {
        let hist = worker.await.context("benchmark worker panicked")??;
        latency.add(&hist).context("merging histograms")?;
    }
    Ok(Measurement {
        ops: latency.len(),
        elapsed: start.elapsed(),
        latency,
    })
}

/// The index of the median of `values` (the lower one of an even count), `None` when empty.
pub fn median_index(values: &[f64]) -> Option<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order.get(values.len().saturating_sub(1) / 2).copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_index_picks_the_middle_value() {
        assert_eq!(median_index(&[3.0, 1.0, 2.0]), Some(2));
        assert_eq!(median_index(&[5.0]), Some(0));
        assert_eq!(median_index(&[4.0, 1.0]), Some(1));
        assert_eq!(median_index(&[]), None);
    }

    use super::*;

    #[tokio::test]
    async fn runs_every_index_once_with_the_given_concurrency() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (s, f, p) = (seen.clone(), in_flight.clone(), peak.clone());
        let m = measure(200, 8, move |i| {
            let (s, f, p) = (s.clone(), f.clone(), p.clone());
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_micros(200)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                s.lock().unwrap().push(i);
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(m.ops, 200);
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 8);
        assert!(m.p50_us() >= 200.0);
    }

    #[tokio::test]
    async fn an_error_names_the_operation() {
        let e = measure(10, 2, |i| async move {
            anyhow::ensure!(i != 7, "boom");
            Ok(())
        })
        .await
        .unwrap_err();
        assert!(format!("{e:#}").contains("operation 7: boom"), "{e:#}");
    }
}
