//! Work a function leaves for after its answer. The Lambda runtime posts the response, then
//! asks for the next event; between the two the environment is not frozen, the caller already
//! has its answer, and the time is billed and bounded by the function's timeout like the rest
//! of the invocation. The layer here runs what the handler deferred in that gap: nothing
//! deferred is lost to a freeze, and nothing waits for it on the caller's side.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::LambdaInvocation;

type Work = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Deferred work of the current invocation (one invocation at a time per environment).
#[derive(Clone, Default)]
pub struct AfterResponse {
    work: Arc<Mutex<Vec<Work>>>,
}

impl AfterResponse {
    /// Runs `work` after the response is posted, before the next invocation.
    pub fn defer(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.lock().push(Box::pin(work));
    }

    /// Runs everything deferred so far, in order.
    pub async fn run(&self) {
        let work: Vec<Work> = std::mem::take(&mut *self.lock());
        for piece in work {
            piece.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Work>> {
        self.work
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The runtime layer: outermost, so its inner service has posted the response when it
    /// returns.
    pub fn layer(&self) -> AfterResponseLayer {
        AfterResponseLayer(self.clone())
    }
}

pub struct AfterResponseLayer(AfterResponse);

impl<S> Layer<S> for AfterResponseLayer {
    type Service = AfterResponseService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AfterResponseService {
            inner,
            after: self.0.clone(),
        }
    }
}

pub struct AfterResponseService<S> {
    inner: S,
    after: AfterResponse,
}

impl<S> Service<LambdaInvocation> for AfterResponseService<S>
where
    S: Service<LambdaInvocation, Response = ()>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = ();
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<(), S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let answered = self.inner.call(invocation);
        let after = self.after.clone();
        Box::pin(async move {
            let result = answered.await;
            after.run().await;
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn deferred_work_runs_once_when_asked_and_not_before() {
        let after = AfterResponse::default();
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let ran = ran.clone();
            after.defer(async move {
                ran.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0, "deferred, not run");
        after.run().await;
        assert_eq!(ran.load(Ordering::SeqCst), 3);
        after.run().await;
        assert_eq!(ran.load(Ordering::SeqCst), 3, "each piece runs once");
    }
}
