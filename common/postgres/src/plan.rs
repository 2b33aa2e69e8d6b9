//! Statements decided before any of them runs, sent together and executed in order.
//!
//! A projection that does not need one statement's answer to choose the next can say all it
//! will do up front; a batch of such projections then costs one round trip instead of one per
//! statement. Postgres executes pipelined statements in the order they arrive, exactly as if
//! each had waited for the one before, so the effect is that of running them one by one. In a
//! transaction the first failure aborts it: later statements fail too, and
//! [`Tx::run`](crate::Tx::run) reports the first.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio_postgres::types::ToSql;

/// One parameter of a planned statement: a value or a borrow of the event it came from.
pub type Param<'a> = Box<dyn ToSql + Sync + Send + 'a>;

/// The statements of a plan, in the order they will run.
#[derive(Default)]
pub struct Plan<'a> {
    pub(crate) statements: Vec<(&'static str, Vec<Param<'a>>)>,
}

impl std::fmt::Debug for Plan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.statements.iter().map(|(sql, _)| sql))
            .finish()
    }
}

impl<'a> Plan<'a> {
    /// Appends a statement; `sql` is static, as every statement here (no SQL is built from
    /// input), and its parameters are `$1..` in order.
    pub fn push(&mut self, sql: &'static str, params: Vec<Param<'a>>) {
        self.statements.push((sql, params));
    }

    pub fn len(&self) -> usize {
        self.statements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

/// Boxes each argument as a [`Param`]: `params![provider, id, &amount]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$(Box::new($value) as $crate::Param<'_>),*]
    };
}

/// Awaits every future, polling them in index order so each one's first poll (where a
/// tokio-postgres query is sent) happens before the next one's. Returns the first error by
/// index, after all have finished: a pipelined statement's error is followed by the aborted
/// transaction's errors for the rest, and the first is the one that says why.
pub(crate) async fn all_in_order<F, T, E>(futures: Vec<F>) -> Result<Vec<T>, E>
where
    F: Future<Output = Result<T, E>>,
{
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<Result<T, E>>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, result) in futures.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(done) => *result = Some(done),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn futures_are_first_polled_in_index_order_and_the_first_error_by_index_wins() {
        let polled = Mutex::new(Vec::new());
        let future = |i: usize| {
            let polled = &polled;
            async move {
                polled.lock().map(|mut p| p.push(i)).ok();
                // The later ones finish first: the order of answers must not matter.
                tokio::time::sleep(std::time::Duration::from_millis(10 * (5 - i as u64))).await;
                if i == 2 || i == 4 {
                    Err(format!("failed {i}"))
                } else {
                    Ok(i)
                }
            }
        };
        let outcome = all_in_order((0..5).map(future).collect()).await;
        assert_eq!(outcome, Err("failed 2".to_owned()));
        assert_eq!(*polled.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        let fine = all_in_order((0..2).map(future).collect()).await;
        assert_eq!(fine, Ok(vec![0, 1]));
    }

    #[test]
    fn a_plan_keeps_its_statements_in_the_order_pushed() {
        let owned = String::from("b");
        let mut plan = Plan::default();
        plan.push("SELECT $1", params![1_i64]);
        plan.push("SELECT $1, $2", params![owned.as_str(), Some("c")]);
        assert_eq!(plan.len(), 2);
        assert_eq!(format!("{plan:?}"), r#"["SELECT $1", "SELECT $1, $2"]"#);
    }
}
