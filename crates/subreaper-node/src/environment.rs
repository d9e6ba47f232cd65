//! One entry per Node environment (the main thread, each worker, each Electron context).
//! When an environment is torn down, the child_process pids it owned go back to the engine
//! (their exits are still reaped and broadcast), and its subscriptions are closed so that the
//! engine's threads stop queuing calls into it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use napi::{Env, Result};
use subreaper_core::Subscription;

struct Environment {
    subscriptions: Vec<Weak<Subscription>>,
    /// The thread the environment runs on: the children it forked and did not declare go
    /// with it, and so does a spawn it never finished (a worker terminated between `pause`
    /// and `resume`).
    thread: i32,
}

fn environments() -> &'static Mutex<HashMap<u32, Environment>> {
    static ENVS: OnceLock<Mutex<HashMap<u32, Environment>>> = OnceLock::new();
    ENVS.get_or_init(|| Mutex::new(HashMap::new()))
}

static NEXT_OWNER: AtomicU32 = AtomicU32::new(1);

pub fn attach(env: &Env) -> Result<u32> {
    let owner = NEXT_OWNER.fetch_add(1, Ordering::Relaxed);
    environments().lock().unwrap().insert(
        owner,
        Environment {
            subscriptions: Vec::new(),
            thread: subreaper_core::procfs::current_thread(),
        },
    );
    env.add_env_cleanup_hook(owner, detach)?;
    crate::exit_hint::attach(env, owner);
    Ok(owner)
}

fn detach(owner: u32) {
    crate::exit_hint::detach(owner);
    let entry = environments().lock().unwrap().remove(&owner);
    if let Some(entry) = &entry {
        for sub in entry.subscriptions.iter().filter_map(Weak::upgrade) {
            sub.unsubscribe();
        }
    }
    if let Ok(reaper) = crate::single_reaper::reaper() {
        let thread = entry.as_ref().map(|e| e.thread);
        reaper.release_owner(owner as u64, thread);
    }
}

pub fn track_subscription(owner: u32, sub: &Arc<Subscription>) {
    if let Some(entry) = environments().lock().unwrap().get_mut(&owner) {
        entry.subscriptions.retain(|w| w.strong_count() > 0);
        entry.subscriptions.push(Arc::downgrade(sub));
    }
}
