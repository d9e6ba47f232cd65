//! The engine's hint that children may have exited, heard on the main thread's event loop.
//!
//! While every child of the process is declared by an owner that reports its exit, the engine
//! keeps its drain out of `waitid` (see `exit_hint` in subreaper-core): the kernel would wake
//! it from each exiting child's exit path, beside the event loop woken by the same exit. For
//! the other zombies (an orphan re-parented meanwhile, a child made without `fork()`) it needs
//! a hint, given here: a libuv SIGCHLD handle notes that a signal came, and a check handle,
//! which libuv runs after the loop's I/O callbacks (so after libuv has reaped its own children
//! and Node has reported them), passes it on. Both are unref'd (they keep no loop alive) and
//! invisible to JavaScript. libuv's functions are looked up in the running process (Node
//! exports them); where one is missing, no hint is given and the drain sleeps in `waitid`.
//!
//! Only the process's main thread installs it, once: its loop lives as long as the process.
//! The handles are never closed; when the environment that installed them is torn down the
//! hint source is unregistered (the drain no longer waits for reports, and a hint that still
//! comes is a harmless nudge), and another environment on that thread (an Electron page
//! reloaded) registers it again.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use napi::Env;

type SignalCb = unsafe extern "C" fn(*mut c_void, c_int);
type CheckCb = unsafe extern "C" fn(*mut c_void);

/// libuv's handle types, as `uv.h` numbers them (checked against `uv_handle_type_name`).
const UV_CHECK: c_int = 2;
const UV_SIGNAL: c_int = 16;

struct Uv {
    handle_size: unsafe extern "C" fn(c_int) -> usize,
    signal_init: unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int,
    signal_start: unsafe extern "C" fn(*mut c_void, SignalCb, c_int) -> c_int,
    check_init: unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int,
    check_start: unsafe extern "C" fn(*mut c_void, CheckCb) -> c_int,
    unref: unsafe extern "C" fn(*mut c_void),
}

/// A function of the running process by name, as a pointer of type `T`.
///
/// # Safety
/// `T` must be the function's exact `extern "C"` type.
unsafe fn lookup<T: Copy>(name: &CStr) -> Option<T> {
    // SAFETY: dlsym with RTLD_DEFAULT searches the global symbols of the process; `name` is
    // NUL-terminated.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if f.is_null() {
        return None;
    }
    // SAFETY: a function pointer has the size of a data pointer on the platforms this runs
    // on, and the caller names the function's type.
    Some(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&f) })
}

fn uv() -> Option<&'static Uv> {
    static UV: OnceLock<Option<Uv>> = OnceLock::new();
    UV.get_or_init(|| {
        // SAFETY: each name is looked up with the type libuv's `uv.h` declares for it.
        unsafe {
            let type_name: unsafe extern "C" fn(c_int) -> *const c_char =
                lookup(c"uv_handle_type_name")?;
            let named = |t: c_int, want: &CStr| {
                let name = type_name(t);
                !name.is_null() && CStr::from_ptr(name) == want
            };
            if !named(UV_CHECK, c"check") || !named(UV_SIGNAL, c"signal") {
                return None;
            }
            Some(Uv {
                handle_size: lookup(c"uv_handle_size")?,
                signal_init: lookup(c"uv_signal_init")?,
                signal_start: lookup(c"uv_signal_start")?,
                check_init: lookup(c"uv_check_init")?,
                check_start: lookup(c"uv_check_start")?,
                unref: lookup(c"uv_unref")?,
            })
        }
    })
    .as_ref()
}

/// A SIGCHLD came since the check handle last ran.
static SIGNALLED: AtomicBool = AtomicBool::new(false);
/// The environment the hint source is registered for (`None`: none is).
static SERVING: Mutex<Option<u32>> = Mutex::new(None);
/// Whether the handles were installed (tried once per process).
static INSTALLED: OnceLock<bool> = OnceLock::new();

unsafe extern "C" fn on_signal(_handle: *mut c_void, _signum: c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

unsafe extern "C" fn on_check(_handle: *mut c_void) {
    if SIGNALLED.swap(false, Ordering::Relaxed) {
        if let Ok(reaper) = crate::single_reaper::reaper() {
            reaper.children_may_have_exited();
        }
    }
}

/// Gives the engine its hint from `env`'s loop, if `env` runs on the process's main thread.
pub fn attach(env: &Env, owner: u32) {
    if subreaper_core::procfs::current_thread() != subreaper_core::procfs::main_thread() {
        return;
    }
    let mut serving = SERVING.lock().unwrap_or_else(|e| e.into_inner());
    if serving.is_some() {
        return;
    }
    let installed = INSTALLED.get_or_init(|| {
        env.get_uv_event_loop()
            .is_ok_and(|uv_loop| install(uv_loop.cast()))
    });
    if !installed {
        return;
    }
    *serving = Some(owner);
    if let Ok(reaper) = crate::single_reaper::reaper() {
        reaper.add_exit_hint_source();
    }
}

/// The environment `owner` is torn down: if it was served, the hint source goes.
pub fn detach(owner: u32) {
    let mut serving = SERVING.lock().unwrap_or_else(|e| e.into_inner());
    if *serving != Some(owner) {
        return;
    }
    *serving = None;
    if let Ok(reaper) = crate::single_reaper::reaper() {
        reaper.remove_exit_hint_source();
    }
}

fn install(uv_loop: *mut c_void) -> bool {
    let Some(uv) = uv() else {
        return false;
    };
    // SAFETY: the handles are allocated at the size libuv gives for their type, 8-aligned,
    // and never freed (they live as long as the main thread's loop, the process); each libuv
    // call is made on the loop's own thread, the only one JavaScript runs on here.
    unsafe {
        let signal = alloc((uv.handle_size)(UV_SIGNAL));
        let check = alloc((uv.handle_size)(UV_CHECK));
        if (uv.signal_init)(uv_loop, signal) != 0 || (uv.check_init)(uv_loop, check) != 0 {
            return false;
        }
        // Unref'd before they start: at no point do they hold the loop open.
        (uv.unref)(signal);
        (uv.unref)(check);
        (uv.check_start)(check, on_check) == 0
            && (uv.signal_start)(signal, on_signal, libc::SIGCHLD) == 0
    }
}

/// Zeroed, 8-aligned memory of `size` bytes that is never freed.
fn alloc(size: usize) -> *mut c_void {
    let words = size.div_ceil(8).max(1);
    Box::leak(vec![0u64; words].into_boxed_slice())
        .as_mut_ptr()
        .cast()
}
