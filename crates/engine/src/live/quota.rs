//! Subscriptions a user and a tenant may hold at once on this instance, over all their
//! sockets and both WebSocket protocols: a cap per socket alone lets one account open
//! sockets until the instance runs out of memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::caller::RequestContext;
use crate::config::Limits;
use crate::error::ApiError;

/// Subscriptions held in this process, over every schema (for metrics).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// How many subscriptions this process runs.
pub fn active() -> usize {
    ACTIVE.load(Ordering::Relaxed)
}

#[derive(Debug)]
pub struct SubscriptionQuota {
    per_user: usize,
    per_tenant: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    users: HashMap<(Uuid, Uuid), usize>,
    tenants: HashMap<Uuid, usize>,
}

/// One subscription counted against its user and tenant while it lives.
#[derive(Debug)]
pub struct QuotaSlot {
    quota: Arc<SubscriptionQuota>,
    tenant: Uuid,
    user: Uuid,
}

impl SubscriptionQuota {
    pub fn new(limits: &Limits) -> Self {
        SubscriptionQuota {
            per_user: limits.max_subscriptions_per_user,
            per_tenant: limits.max_subscriptions_per_tenant,
            held: Mutex::default(),
        }
    }

    /// Counts one more subscription of `rc`, or refuses it with LIMIT_EXCEEDED.
    pub fn acquire(self: &Arc<Self>, rc: &RequestContext) -> Result<QuotaSlot, ApiError> {
        let mut held = self
            .held
            .lock()
            .map_err(|_| ApiError::internal("subscription quota poisoned"))?;
        let user = held
            .users
            .get(&(rc.tenant_id, rc.user_id))
            .copied()
            .unwrap_or(0);
        if user >= self.per_user {
            return Err(ApiError::limit_exceeded(format!(
                "at most {} subscriptions per user",
                self.per_user
            )));
        }
        let tenant = held.tenants.get(&rc.tenant_id).copied().unwrap_or(0);
        if tenant >= self.per_tenant {
            return Err(ApiError::limit_exceeded(format!(
                "at most {} subscriptions per tenant",
                self.per_tenant
            )));
        }
        *held.users.entry((rc.tenant_id, rc.user_id)).or_default() += 1;
        *held.tenants.entry(rc.tenant_id).or_default() += 1;
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        Ok(QuotaSlot {
            quota: self.clone(),
            tenant: rc.tenant_id,
            user: rc.user_id,
        })
    }
}

impl Drop for QuotaSlot {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
        let Ok(mut held) = self.quota.held.lock() else {
            return;
        };
        fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
        release(&mut held.users, (self.tenant, self.user));
        release(&mut held.tenants, self.tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Role;

    fn caller(tenant: Uuid, user: Uuid) -> RequestContext {
        RequestContext::new(tenant, user, Role::User)
    }

    #[test]
    fn users_and_tenants_are_capped_and_slots_come_back() {
        let limits = Limits {
            max_subscriptions_per_user: 2,
            max_subscriptions_per_tenant: 3,
            ..Limits::default()
        };
        let quota = Arc::new(SubscriptionQuota::new(&limits));
        let t = Uuid::now_v7();
        let (a, b) = (caller(t, Uuid::now_v7()), caller(t, Uuid::now_v7()));
        let a1 = quota.acquire(&a).unwrap();
        let _a2 = quota.acquire(&a).unwrap();
        assert_eq!(quota.acquire(&a).unwrap_err().code(), "LIMIT_EXCEEDED");
        let _b1 = quota.acquire(&b).unwrap();
        // The tenant is full: b has one of its two left, but the tenant none.
        assert!(quota.acquire(&b).is_err());
        // Another tenant is not affected.
        assert!(quota.acquire(&caller(Uuid::now_v7(), a.user_id)).is_ok());
        drop(a1);
        assert!(quota.acquire(&b).is_ok());
    }
}
