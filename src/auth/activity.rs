//! `User.lastActiveAt`, kept at a bounded write rate: a request marks its user active at most
//! once per interval per instance (a map of when each user was last written), and the write
//! itself only lands when the stored value is older than the interval, so several instances
//! do not multiply it. The write runs beside the request, never delaying it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::FutureExt;
use uuid::Uuid;

use crate::auth::RequestContext;
use crate::db::sql::SqlBuilder;
use crate::db::value::Value;
use crate::db::Db;
use crate::graphql::meta::ColumnType;

/// Users remembered at most; past it the map starts over (a few extra writes, no growth).
const REMEMBERED: usize = 100_000;

pub struct Activity {
    every: Duration,
    written: Mutex<HashMap<Uuid, Instant>>,
}

impl Activity {
    pub fn new(every: Duration) -> Activity {
        Activity {
            every,
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the caller's activity is due to be written now (and notes that it is).
    fn due(&self, user: Uuid) -> bool {
        let Ok(mut written) = self.written.lock() else {
            return false;
        };
        let now = Instant::now();
        if written
            .get(&user)
            .is_some_and(|at| now.duration_since(*at) < self.every)
        {
            return false;
        }
        if written.len() >= REMEMBERED {
            written.clear();
        }
        written.insert(user, now);
        true
    }

    /// Marks the caller active, in the background when due.
    pub fn touch(&self, db: &Db, rc: &RequestContext) {
        if !self.due(rc.user_id) {
            return;
        }
        let (pool, rc, secs) = (db.clone(), rc.clone(), self.every.as_secs_f64());
        db.background(async move {
            let caller = rc.clone();
            let result = pool
                .transaction(&caller, false, move |conn| {
                    async move {
                        let mut b = SqlBuilder::new(
                            "UPDATE \"users\" SET \"last_active_at\" = now() WHERE \"tenant_id\" = ",
                        );
                        b.bind(Value::Uuid(rc.tenant_id), ColumnType::Uuid, false);
                        b.push(" AND \"id\" = ");
                        b.bind(Value::Uuid(rc.user_id), ColumnType::Uuid, false);
                        b.push(" AND (\"last_active_at\" IS NULL OR \"last_active_at\" < now() - make_interval(secs => ");
                        b.bind(Value::Float(secs), ColumnType::Float, false);
                        b.push("))");
                        diesel_async::RunQueryDsl::execute(b.into_query(), conn)
                            .await
                            .map(|_| ())
                            .map_err(|e| crate::error::ApiError::internal(format!("last active: {e}")))
                    }
                    .boxed()
                })
                .await;
            // A refused caller (suspended, signed out) is no activity to record.
            if let Err(e) = result {
                tracing::debug!("lastActiveAt not written: {}", e.message());
            }
        });
    }
}
