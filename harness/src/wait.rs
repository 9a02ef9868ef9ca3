//! Waiting on a condition with a deadline — never a bare sleep. A timeout names the
//! condition that did not come true.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Poll interval of [`until`]: short at first, so a condition that comes true quickly is
/// seen quickly, then growing to [`POLL`] so a long wait does not hammer what it asks.
const FIRST_POLL: Duration = Duration::from_millis(20);
const POLL: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    pub fn after(budget: Duration) -> Deadline {
        Deadline { at: Instant::now() + budget, budget }
    }
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// A condition that did not come true in time.
#[derive(Clone, Debug, thiserror::Error)]
#[error("timed out after {after:?} waiting for {condition}")]
pub struct Timeout {
    pub condition: String,
    pub after: Duration,
}

/// Call `check` until it returns `Some`, or fail with a [`Timeout`] naming `condition`.
pub async fn until<T, F, Fut>(deadline: Deadline, condition: &str, mut check: F) -> Result<T, Timeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let mut poll = FIRST_POLL;
    loop {
        let attempt = tokio::time::timeout(deadline.remaining().max(Duration::from_millis(1)), check()).await;
        if let Ok(Some(v)) = attempt {
            return Ok(v);
        }
        if deadline.passed() {
            return Err(Timeout { condition: condition.to_string(), after: deadline.budget });
        }
        tokio::time::sleep(poll.min(deadline.remaining())).await;
        poll = (poll * 3 / 2).min(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn times_out_naming_the_condition() {
        let err = until(Deadline::after(Duration::from_secs(2)), "the moon to turn blue", || async { None::<()> }).await.unwrap_err();
        assert!(err.to_string().contains("the moon to turn blue"));
        assert_eq!(err.after, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn returns_as_soon_as_the_condition_holds() {
        let mut n = 0;
        let v = until(Deadline::after(Duration::from_secs(10)), "n to reach 3", || {
            n += 1;
            let n = n;
            async move { (n >= 3).then_some(n) }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
    }
}
