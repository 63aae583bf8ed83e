//! A bounded map of what was worked out once and is asked for again: parsed documents, passed
//! validations, admitted callers, verified tokens. When full it starts over, so a client
//! inventing keys only churns it; whoever keeps something finds it again by working it out.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub struct Kept<K, V> {
    map: RwLock<HashMap<K, V>>,
    max: usize,
}

impl<K: Hash + Eq, V: Clone> Kept<K, V> {
    /// At most `max` entries.
    pub fn new(max: usize) -> Self {
        Kept {
            map: RwLock::new(HashMap::new()),
            max,
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read().get(key).cloned()
    }

    pub fn keep(&self, key: K, value: V) {
        let mut kept = self.write();
        if kept.len() >= self.max {
            kept.clear();
        }
        kept.insert(key, value);
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // A panic while holding the lock leaves a map that is still whole.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<K, V>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<K, V>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_keeps_at_most_its_bound_and_starts_over_when_full() {
        let kept: Kept<String, usize> = Kept::new(3);
        for i in 0..3 {
            kept.keep(i.to_string(), i);
        }
        assert_eq!(kept.get("2"), Some(2));
        kept.keep("3".into(), 3);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept.get("0"), None);
        assert_eq!(kept.get("3"), Some(3));
    }
}
