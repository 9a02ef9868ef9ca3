//! Sampling: every operation's probe runs in its own task, an attempt every `interval`
//! (from the start of one attempt to the start of the next), with at most `concurrency`
//! of its attempts in flight (1: one at a time; more lets slow attempts overlap, so a
//! window holds more of them) and a bound on attempts in flight across operations.
//! Samples carry their start time relative to the sampler's epoch (a sampler runs on
//! across a suite's scenarios, which re-base their part to their own clock) and are kept
//! in order of start. An attempt starts when it holds both permits: its start time, its
//! duration and its timeout are all counted from then, so an attempt that waited for a
//! slot while a fault was in place and ran after the revert carries the time it really
//! ran. Sampling can be paused (no attempt starts; those in flight end) and resumed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Probe;
use crate::model::{Outcome, Sample};

/// Attempts in flight at once, across all operations.
pub const MAX_IN_FLIGHT: usize = 8;
/// An attempt that takes longer than this counts as failed (timed out), unless the
/// operation says otherwise.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

type Store = Arc<Mutex<BTreeMap<String, Vec<Sample>>>>;

/// One operation to sample.
pub struct Sampled {
    pub id: String,
    pub probe: Arc<dyn Probe>,
    pub interval: Duration,
    pub concurrency: usize,
    /// An attempt still running after this long is abandoned and counts as failed.
    pub timeout: Duration,
}

pub struct Sampler {
    epoch: Instant,
    store: Store,
    tasks: Vec<(String, JoinHandle<()>)>,
    pause: Arc<Pause>,
    /// The longest an attempt may take: how long draining may wait.
    longest: Duration,
}

/// Whether attempts may start, and how many are in flight.
#[derive(Default)]
struct Pause {
    paused: AtomicBool,
    in_flight: AtomicUsize,
    resumed: tokio::sync::Notify,
}

/// An attempt's place among those in flight, given back when it ends (or is dropped).
struct InFlight(Arc<Pause>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A probe task panicked: a harness failure.
#[derive(Debug, thiserror::Error)]
#[error("the probe of operation `{operation}` panicked: {message}")]
pub struct ProbePanic {
    pub operation: String,
    pub message: String,
}

impl Sampler {
    pub fn start(ops: Vec<Sampled>) -> Sampler {
        let epoch = Instant::now();
        let store: Store = Arc::new(Mutex::new(ops.iter().map(|o| (o.id.clone(), Vec::new())).collect()));
        let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let pause = Arc::new(Pause::default());
        let longest = ops.iter().map(|o| o.timeout).max().unwrap_or_default();
        let tasks = ops
            .into_iter()
            .map(|Sampled { id, probe, interval, concurrency, timeout }| {
                let store = store.clone();
                let limit = limit.clone();
                let pause = pause.clone();
                let op = id.clone();
                let task = tokio::spawn(async move {
                    let own = Arc::new(Semaphore::new(concurrency.max(1)));
                    // The attempts in flight: aborted with this task, so none outlives it.
                    let mut running = tokio::task::JoinSet::new();
                    loop {
                        let mine = own.clone().acquire_owned().await.expect("semaphore never closed");
                        // Counted in flight before the pause is looked at, so that `pause`
                        // either sees this attempt or this attempt sees the pause.
                        pause.in_flight.fetch_add(1, Ordering::SeqCst);
                        let place = InFlight(pause.clone());
                        if pause.paused.load(Ordering::SeqCst) {
                            drop(place);
                            let resumed = pause.resumed.notified();
                            if pause.paused.load(Ordering::SeqCst) {
                                resumed.await;
                            }
                            continue;
                        }
                        let tick = Instant::now();
                        let (probe, limit, store, op) = (probe.clone(), limit.clone(), store.clone(), op.clone());
                        running.spawn(async move {
                            let _place = place;
                            let permit = limit.acquire().await.expect("semaphore never closed");
                            let start = Instant::now();
                            let (outcome, detail) = match tokio::time::timeout(timeout, probe.attempt()).await {
                                Ok(a) => a,
                                Err(_) => (Outcome::Failed, Some(format!("attempt timed out after {timeout:?}"))),
                            };
                            drop(permit);
                            drop(mine);
                            let sample = Sample { at: start.duration_since(epoch), took: start.elapsed(), outcome, detail };
                            let mut store = store.lock().expect("sample store");
                            let v = store.entry(op).or_default();
                            let at = v.partition_point(|s| s.at <= sample.at);
                            v.insert(at, sample);
                        });
                        // A panicking attempt ends the operation's task: a harness failure.
                        while let Some(done) = running.try_join_next() {
                            if let Err(e) = done
                                && e.is_panic()
                            {
                                std::panic::resume_unwind(e.into_panic());
                            }
                        }
                        tokio::time::sleep_until(tick + interval).await;
                    }
                });
                (id, task)
            })
            .collect();
        Sampler { epoch, store, tasks, pause, longest }
    }

    /// Start no attempt until [`resume`](Self::resume), and wait for those in flight to end
    /// (at most their timeout): nothing the probes do overlaps what the caller does next.
    pub async fn pause(&self) -> Result<(), ProbePanic> {
        self.pause.paused.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + self.longest + Duration::from_secs(1);
        while self.pause.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            self.check()?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.check()
    }

    /// Attempts start again, on the same clock.
    pub fn resume(&self) {
        self.pause.paused.store(false, Ordering::SeqCst);
        self.pause.resumed.notify_waiters();
    }

    /// Time since sampling started: the sampler's clock.
    pub fn now(&self) -> Duration {
        Instant::now().duration_since(self.epoch)
    }

    pub fn samples(&self) -> BTreeMap<String, Vec<Sample>> {
        self.store.lock().expect("sample store").clone()
    }

    /// The samples of attempts that started at `from` or later: a scenario's part of a
    /// sampler that runs on across a suite's scenarios.
    pub fn samples_since(&self, from: Duration) -> BTreeMap<String, Vec<Sample>> {
        let store = self.store.lock().expect("sample store");
        store.iter().map(|(op, v)| (op.clone(), v[v.partition_point(|s| s.at < from)..].to_vec())).collect()
    }

    /// A probe task that ended (they only end by panicking) is a harness failure.
    pub fn check(&self) -> Result<(), ProbePanic> {
        for (op, t) in &self.tasks {
            if t.is_finished() {
                return Err(ProbePanic { operation: op.clone(), message: "its task ended".into() });
            }
        }
        Ok(())
    }

    /// Stop every probe and return the samples; a panic in any probe is reported.
    pub async fn stop(mut self) -> Result<BTreeMap<String, Vec<Sample>>, ProbePanic> {
        let mut panic = None;
        for (op, t) in std::mem::take(&mut self.tasks) {
            if t.is_finished() {
                if let Err(e) = t.await
                    && e.is_panic()
                {
                    let p = e.into_panic();
                    let message = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                    panic.get_or_insert(ProbePanic { operation: op, message });
                }
            } else {
                t.abort();
                let _ = t.await;
            }
        }
        let samples = self.store.lock().expect("sample store").clone();
        match panic {
            Some(p) => Err(p),
            None => Ok(samples),
        }
    }
}

/// A sampler dropped on any path (an error, Ctrl-C, a panic) stops its probes: no probe may
/// outlive its scenario and send traffic to an environment that is gone.
impl Drop for Sampler {
    fn drop(&mut self) {
        for (_, t) in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Attempt;
    use futures::future::BoxFuture;

    /// A fake probe for this unit test of the sampler's bookkeeping: each attempt sleeps.
    struct Sleeps(Duration);

    impl Probe for Sleeps {
        fn attempt(&self) -> BoxFuture<'_, Attempt> {
            Box::pin(async move {
                tokio::time::sleep(self.0).await;
                (Outcome::Ok, None)
            })
        }
    }

    /// Paused, the sampler lets the attempt in flight end and starts none; resumed, it goes
    /// on with the same clock and the samples it had.
    #[tokio::test(start_paused = true)]
    async fn a_paused_sampler_ends_what_is_in_flight_and_starts_nothing() {
        let ops = vec![Sampled {
            id: "op".into(),
            probe: Arc::new(Sleeps(Duration::from_millis(400))),
            interval: Duration::from_millis(100),
            concurrency: 1,
            timeout: Duration::from_secs(5),
        }];
        let sampler = Sampler::start(ops);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        sampler.pause().await.expect("no panic");
        let paused_at = sampler.now();
        let drained = sampler.samples()["op"].clone();
        assert!(drained.iter().all(|s| s.end() <= paused_at), "an attempt outlived the pause: {drained:?}");
        assert_eq!(drained.len(), 3, "the attempt in flight at 1 s ended before pause returned: {drained:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(sampler.samples()["op"], drained, "nothing starts while paused");
        sampler.resume();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let all = sampler.stop().await.expect("no panic")["op"].clone();
        assert!(all.len() >= drained.len() + 2, "sampling goes on after resume: {all:?}");
        assert!(all[drained.len()].at >= paused_at + Duration::from_secs(2), "on the same clock: {all:?}");
    }

    /// Defect: a sample's start was taken before its attempt got a slot among the attempts
    /// in flight, so an attempt that waited (during a fault) and ran later (after the
    /// revert) was dated back into the fault. Now it carries the time it really started.
    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_waited_for_a_slot_is_dated_when_it_ran() {
        let ops = (0..=MAX_IN_FLIGHT)
            .map(|i| Sampled {
                id: format!("op{i}"),
                probe: Arc::new(Sleeps(Duration::from_millis(400))),
                interval: Duration::from_secs(10),
                concurrency: 1,
                timeout: Duration::from_millis(500),
            })
            .collect();
        let sampler = Sampler::start(ops);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let samples = sampler.stop().await.expect("no panic");
        let mut starts: Vec<(Duration, Duration)> = samples.values().map(|v| (v[0].at, v[0].took)).collect();
        starts.sort();
        // Eight ran at once; the ninth waited 400 ms for a slot, then ran 400 ms, within its
        // 500 ms timeout.
        let (at, took) = *starts.last().unwrap();
        assert!(at >= Duration::from_millis(400), "the ninth attempt is dated {at:?}, before it could start");
        assert!(took < Duration::from_millis(450), "the ninth attempt's duration {took:?} includes its wait");
        assert!(samples.values().all(|v| v[0].outcome == Outcome::Ok), "the wait counted against the timeout: {samples:?}");
    }
}
