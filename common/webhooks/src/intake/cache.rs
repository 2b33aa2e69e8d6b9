//! Sources cached per container: found ones for a while, unknown ids briefly. A flood of
//! random source ids then costs one lookup per id per miss TTL, and can never push a known
//! source out of the cache (misses have their own bounded map).
//!
//! A Lambda container handles one request at a time, so a miss is looked up once per
//! container per TTL; concurrent containers each have their own cache.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inlet_core::{SourceId, StoreError};

use super::ports::SourceStore;
use super::source::Source;

/// Known sources kept per container.
const FOUND_CAPACITY: usize = 1024;
/// Unknown ids remembered per container.
const MISSING_CAPACITY: usize = 4096;

/// Where sources really live (DynamoDB): one read per call.
pub trait SourceLookup {
    fn fetch(
        &self,
        source_id: &str,
    ) -> impl Future<Output = Result<Option<Source>, StoreError>> + Send;
}

#[derive(Debug)]
pub struct CachedSources<L> {
    lookup: L,
    found_ttl: Duration,
    missing_ttl: Duration,
    found: Mutex<HashMap<String, (Instant, Arc<Source>)>>,
    missing: Mutex<HashMap<String, Instant>>,
}

impl<L> CachedSources<L> {
    pub fn new(lookup: L, found_ttl: Duration, missing_ttl: Duration) -> Self {
        Self {
            lookup,
            found_ttl,
            missing_ttl,
            found: Mutex::default(),
            missing: Mutex::default(),
        }
    }

    /// The store behind the cache.
    pub fn inner(&self) -> &L {
        &self.lookup
    }

    fn cached(&self, source_id: &str) -> Option<Option<Arc<Source>>> {
        let fresh = |at: &Instant, ttl| at.elapsed() < ttl;
        if let Some((at, source)) = self.found.lock().ok()?.get(source_id) {
            if fresh(at, self.found_ttl) {
                return Some(Some(source.clone()));
            }
        }
        match self.missing.lock().ok()?.get(source_id) {
            Some(at) if fresh(at, self.missing_ttl) => Some(None),
            _ => None,
        }
    }

    fn remember(&self, source_id: &str, source: Option<&Arc<Source>>) {
        let now = Instant::now();
        match source {
            Some(source) => {
                if let Ok(mut found) = self.found.lock() {
                    if found.len() >= FOUND_CAPACITY {
                        found.retain(|_, (at, _)| at.elapsed() < self.found_ttl);
                    }
                    if found.len() < FOUND_CAPACITY {
                        found.insert(source_id.to_owned(), (now, source.clone()));
                    }
                }
                if let Ok(mut missing) = self.missing.lock() {
                    missing.remove(source_id);
                }
            }
            None => {
                if let Ok(mut missing) = self.missing.lock() {
                    if missing.len() >= MISSING_CAPACITY {
                        missing.retain(|_, at| at.elapsed() < self.missing_ttl);
                    }
                    if missing.len() >= MISSING_CAPACITY {
                        // Only unknown ids are forgotten; known sources stay cached.
                        missing.clear();
                    }
                    missing.insert(source_id.to_owned(), now);
                }
            }
        }
    }
}

impl<L: SourceLookup + Sync> SourceStore for CachedSources<L> {
    async fn get(&self, source_id: &str) -> Result<Option<Arc<Source>>, StoreError> {
        if !SourceId::is_valid(source_id) {
            return Ok(None);
        }
        if let Some(cached) = self.cached(source_id) {
            return Ok(cached);
        }
        // A store error is not cached: the next request asks again.
        let source = self.lookup.fetch(source_id).await?.map(Arc::new);
        self.remember(source_id, source.as_ref());
        Ok(source)
    }
}
